"""The chart's custom resources (KEDA, Prometheus Operator) against their published schemas.

The schemas come from npm (@kubernetes-models/keda and /prometheus-operator, pinned in
tests/deploy/crd/package-lock.json; scripts/test.sh runs `npm ci` there), checked by
tests/deploy/crd/validate.mjs in one node process for every variant at once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.chart import CHART, RELEASE, VARIANTS, Doc, one, rendered

CRD_DIR = CHART.parents[2] / "tests" / "deploy" / "crd"
CUSTOM_GROUPS = ("keda.sh/", "monitoring.coreos.com/")


def _need(what: str, present: bool) -> None:
    if present:
        return
    message = f"{what} (scripts/test.sh runs `npm ci` in tests/deploy/crd when npm exists)"
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    _need("node is not installed", path is not None)
    assert path is not None
    _need("the schemas are not installed",
          (CRD_DIR / "node_modules" / "@kubernetes-models" / "keda").is_dir()
          and (CRD_DIR / "node_modules" / "@kubernetes-models" / "prometheus-operator").is_dir())
    return path


def validate(node: str, objects: list[Doc]) -> tuple[int, list[str]]:
    done = subprocess.run([node, "validate.mjs"], cwd=CRD_DIR, input=json.dumps(objects),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.stderr == "", done.stderr
    return done.returncode, done.stdout.splitlines()


def test_custom_resources_match_their_schemas(node: str) -> None:
    objects: list[Doc] = []
    for variant in VARIANTS:
        objects.extend(d for d in rendered(variant)
                       if str(d["apiVersion"]).startswith(CUSTOM_GROUPS))
    code, lines = validate(node, objects)
    assert code == 0, "\n".join(lines)
    assert len(lines) == len(objects)
    assert all(line.startswith("ok ") for line in lines)
    kinds = {d["kind"] for d in objects}
    assert kinds == {"ScaledObject", "TriggerAuthentication", "ServiceMonitor",
                     "PrometheusRule"}


def test_the_schemas_reject_what_keda_and_the_operator_would(node: str) -> None:
    scaled: dict[str, Any] = json.loads(json.dumps(one(
        rendered("KEDA, Prometheus trigger"), "ScaledObject", f"{RELEASE}-worker")))
    scaled["spec"]["minReplicaCount"] = "zero"
    rule = json.loads(json.dumps(one(rendered("ServiceMonitor + PrometheusRule on"),
                                     "PrometheusRule", RELEASE)))
    del rule["spec"]["groups"][0]["name"]
    unknown = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledWidget",
               "metadata": {"name": "w"}}
    code, lines = validate(node, [scaled, rule, unknown])
    assert code == 1
    assert lines[0].startswith(f"error ScaledObject/{RELEASE}-worker: ")
    assert "minReplicaCount must be integer" in lines[0]
    assert lines[1].startswith(f"error PrometheusRule/{RELEASE}: ")
    assert "name" in lines[1]
    assert lines[2] == "error ScaledWidget/w: no schema for keda.sh/v1alpha1 ScaledWidget"


def test_the_prometheus_rule_is_the_shipped_rules_file() -> None:
    rule = one(rendered("ServiceMonitor + PrometheusRule on"), "PrometheusRule", RELEASE)
    shipped = yaml.safe_load((CHART.parents[1] / "prometheus" / "queuectl-rules.yml")
                             .read_text(encoding="utf-8"))
    assert rule["spec"] == shipped
