"""Values the chart refuses (the schema, and the checks at render), and the chart's own
documents and copies kept in step with the values and files they describe."""

from __future__ import annotations

import re
from typing import Any

import helm_python
import pytest
import yaml

from tests.deploy.chart import CHART, VARIANTS, chart, leaf_keys, render

ROOT = CHART.parents[2]
BASE = VARIANTS["defaults (external redis.url)"]


@pytest.mark.parametrize(("values", "message"), [
    ({"worker": {"replicas": "three"}}, "at '/worker/replicas': got string, want integer"),
    ({"scheduler": {"replicas": 0}}, "at '/scheduler/replicas': minimum: got 0, want 1"),
    ({"config": {"logTarget": "syslog"}},
     "at '/config/logTarget': value must be one of 'file', 'stdout', 'both'"),
    ({"config": {"concurrency": 1000}}, "at '/config/concurrency': maximum: got 1,000, want 512"),
    ({"config": {"queues": ["ok", "no spaces"]}}, "at '/config/queues/1'"),
    ({"config": {"queues": []}}, "at '/config/queues': minItems: got 0, want 1"),
    ({"config": {"shutdownGrace": -1}}, "at '/config/shutdownGrace': minimum: got -1, want 0"),
    ({"worker": {"autoscaling": {"keda": {"trigger": "cpu"}}}},
     "at '/worker/autoscaling/keda/trigger': value must be one of 'prometheus', 'redis'"),
    ({"worker": {"autoscaling": {"keda": {"redis": {"address": "redis://r:6379"}}}}},
     "at '/worker/autoscaling/keda/redis/address'"),
    ({"worker": {"image": {"pullPolicy": "Sometimes"}}},
     "at '/worker/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'"),
    ({"worker": {"replica": 3}}, "at '/worker': additional properties 'replica' not allowed"),
    ({"redis": {"url": "http://redis:6379"}}, "at '/redis/url'"),
    ({"redis": {"password": "p@ss/word"}}, "at '/redis/password'"),
    ({"redis": {"minReplicasAck": 17}}, "at '/redis/minReplicasAck': maximum: got 17, want 16"),
    ({"redis": {"cluster": "yes"}}, "at '/redis/cluster': got string, want boolean"),
    ({"otel": {"protocol": "thrift"}},
     "at '/otel/protocol': value must be one of 'http/protobuf', 'grpc'"),
    ({"scheduler": {"serviceMonitor": {"interval": "often"}}},
     "at '/scheduler/serviceMonitor/interval'"),
    ({"worker": {"extraEnv": [{"value": "x"}]}},
     "at '/worker/extraEnv/0': missing property 'name'"),
])
def test_the_schema_rejects_bad_values(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as caught:
        chart().validate_schema(values)
    assert message in str(caught.value)
    # `helm install` checks the same schema before rendering anything.
    with pytest.raises(helm_python.HelmValuesError, match=re.escape(message)):
        render({**BASE, **values})


def test_the_defaults_and_every_variant_pass_the_schema() -> None:
    chart().validate_schema({})
    for values in VARIANTS.values():
        chart().validate_schema(values)


@pytest.mark.parametrize(("values", "message"), [
    ({"worker": {"terminationGracePeriodSeconds": 27}},
     "worker.terminationGracePeriodSeconds (27) must be greater than config.shutdownGrace + "
     "config.killGrace (25 + 2)"),
    ({"worker": {"terminationGracePeriodSeconds": 20}},
     "worker.terminationGracePeriodSeconds (20) must be greater than"),
    ({"config": {"shutdownGrace": 3600}},
     "worker.terminationGracePeriodSeconds (30) must be greater than config.shutdownGrace + "
     "config.killGrace (3600 + 2)"),
    ({"worker": {"autoscaling": {"hpa": {"enabled": True}, "keda": {"enabled": True}}}},
     "worker.autoscaling.hpa.enabled and worker.autoscaling.keda.enabled are both true"),
    ({"worker": {"autoscaling": {"keda": {"enabled": True, "trigger": "redis"}}}},
     "set worker.autoscaling.keda.redis.address"),
    ({"worker": {"autoscaling": {"keda": {"enabled": True, "trigger": "redis",
                                          "redis": {"address": "r:6379", "queue": "bulk"}}}}},
     'worker.autoscaling.keda.redis.queue "bulk" is not one of config.queues [default]'),
    ({"config": {"workerTtl": 2}},
     "config.workerTtl (2) must be greater than config.heartbeatInterval (2)"),
    ({"redis": {"url": ""}}, "no Redis: set redis.url"),
    ({"redis": {"url": "redis://r:6379/0", "bundled": {"enabled": True}}},
     "choose the bundled Redis or your own"),
    ({"redis": {"url": "redis://r0:6379,r1:6379/0", "cluster": True}},
     'redis.cluster is true and config.keyPrefix "queuectl" has no hash tag'),
    ({"redis": {"cluster": True, "bundled": {"enabled": True}},
      "config": {"keyPrefix": "{queuectl}"}},
     "the bundled Redis is one server, not a cluster"),
])
def test_render_refuses_what_would_break_at_run_time(values: dict[str, Any],
                                                     message: str) -> None:
    merged = {**BASE, **values}
    if "redis" in values:
        merged["redis"] = values["redis"]
    with pytest.raises(helm_python.HelmRenderError) as caught:
        render(merged)
    assert message in str(caught.value)


def test_the_chart_readme_lists_every_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE))
    missing = [key for key in leaf_keys(values) if key not in rows]
    assert missing == []
    unknown = sorted(rows - set(leaf_keys(values)))
    assert unknown == []  # no row for a value that does not exist


def test_the_chart_readme_and_notes_name_the_cli_line() -> None:
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    assert "kubectl exec deploy/queuectl-cli -- queuectl status" in readme


@pytest.mark.parametrize(("copy", "original"), [
    ("files/queuectl-rules.yml", "deploy/prometheus/queuectl-rules.yml"),
    ("files/queuectl-dashboard.json", "deploy/grafana/queuectl-dashboard.json"),
])
def test_chart_files_are_copies_of_the_shipped_ones(copy: str, original: str) -> None:
    # A chart cannot read outside its directory (and `helm package` must carry them).
    assert (CHART / copy).read_bytes() == (ROOT / original).read_bytes(), (
        f"cp {original} deploy/helm/queuectl/{copy}")
