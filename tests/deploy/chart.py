"""Rendering the Helm chart offline (Helm's own Go library, through helm-python-sdk).

``VARIANTS`` are the values combinations the tests render and validate; each one
turns on something a user would (an autoscaler, the bundled Redis, monitoring, a
NetworkPolicy, ...), so that every template is rendered with its options on and off.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "queuectl"
RELEASE = "queuectl"
NAMESPACE = "jobs"
# The current Kubernetes minor the manifests are validated against.
KUBE_VERSION = "1.32.0"

Doc = dict[str, Any]

EXTERNAL = {"redis": {"url": "redis://:s3cret@redis.data.svc:6379/0", "password": "s3cret"}}
BUNDLED = {"redis": {"bundled": {"enabled": True}, "password": "s3cret"}}

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults (external redis.url)": EXTERNAL,
    "HPA on CPU (scheduler and workers)": {
        **EXTERNAL,
        "scheduler": {"autoscaling": {"hpa": {"enabled": True}}},
        "worker": {"autoscaling": {"hpa": {"enabled": True, "maxReplicas": 20}}},
    },
    "KEDA, Prometheus trigger": {
        **EXTERNAL,
        "config": {"queues": ["high", "default", "reports.v2"]},
        "worker": {"autoscaling": {"keda": {"enabled": True, "trigger": "prometheus"}}},
    },
    "KEDA, redis trigger + TriggerAuthentication": {
        **EXTERNAL,
        "config": {"keyPrefix": "{queuectl}", "queues": ["high", "default"]},
        "worker": {"autoscaling": {"keda": {
            "enabled": True, "trigger": "redis", "jobsPerReplica": 8, "activationJobs": 2,
            "redis": {"address": "redis.data.svc:6379", "queue": "high"}}}},
    },
    "KEDA, redis trigger on the bundled Redis": {
        **BUNDLED,
        "worker": {"autoscaling": {"keda": {"enabled": True, "trigger": "redis",
                                            "fallbackReplicas": 0}}},
    },
    "bundled Redis (AOF on a PVC)": BUNDLED,
    "Redis Cluster, hash-tagged prefix, replica acks": {
        "redis": {"url": "redis://:s3cret@redis-0.redis:6379,redis-1.redis:6379/0",
                  "cluster": True, "minReplicasAck": 1, "replicaAckTimeout": 0.5},
        "config": {"keyPrefix": "{jobs}"},
    },
    "Sentinel URL": {
        "redis": {"url": "redis+sentinel://:s3cret@sentinel-0:26379,sentinel-1:26379/mymaster/0"}},
    "bundled Redis without persistence": {
        "redis": {"bundled": {"enabled": True, "persistence": {"enabled": False}}}},
    "ServiceMonitor + PrometheusRule on": {
        **EXTERNAL,
        "scheduler": {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}},
        "worker": {"serviceMonitor": {"enabled": True}},
        "prometheusRule": {"enabled": True, "labels": {"release": "kps"}},
    },
    "monitoring off (no dashboard, no ServiceMonitor, no rules)": {
        **EXTERNAL, "grafanaDashboard": {"enabled": False}},
    "existingSecret": {
        "redis": {"existingSecret": "my-redis", "existingSecretUrlKey": "url",
                  "existingSecretPasswordKey": "pass"}},
    "read-only root + tracing + tmp size limit": {
        **EXTERNAL,
        "otel": {"endpoint": "http://otel-collector.observability:4318",
                 "resourceAttributes": "deployment.environment=prod"},
        "worker": {"tmpSizeLimit": "2Gi", "extraEnv": [{"name": "APP_MODE", "value": "prod"}]},
    },
    "NetworkPolicy, external Redis and OTLP (gRPC)": {
        **EXTERNAL,
        "otel": {"endpoint": "http://otel-collector.observability:4317", "protocol": "grpc"},
        "networkPolicy": {
            "enabled": True,
            "redisTo": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
            "metricsFrom": [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": "monitoring"}}}],
            "workerExtraEgress": [{"ports": [{"port": 443, "protocol": "TCP"}]}],
        },
    },
    "NetworkPolicy, bundled Redis": {**BUNDLED, "networkPolicy": {"enabled": True}},
    "several schedulers, long drain, CLI off": {
        **EXTERNAL,
        "config": {"shutdownGrace": 3600, "killGrace": 10},
        "scheduler": {"replicas": 3},
        "worker": {"replicas": 6, "terminationGracePeriodSeconds": 3630},
        "cli": {"enabled": False},
    },
}


@functools.cache
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(str(CHART))


def render_files(values: dict[str, Any], name: str = RELEASE) -> dict[str, str]:
    """Template path -> rendered text; raises helm_python.HelmError as `helm install` would fail."""
    return chart().render(values, name=name, namespace=NAMESPACE, is_install=True)


def render(values: dict[str, Any], name: str = RELEASE) -> list[Doc]:
    """Every manifest the values produce (NOTES.txt left out), parsed."""
    docs: list[Doc] = []
    for path, text in sorted(render_files(values, name).items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


@functools.cache
def rendered(variant: str) -> tuple[Doc, ...]:
    """The manifests of one of VARIANTS, rendered once per session."""
    return tuple(render(VARIANTS[variant]))


def find(docs: tuple[Doc, ...] | list[Doc], kind: str, name: str | None = None) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind
            and (name is None or d["metadata"]["name"] == name)]


def one(docs: tuple[Doc, ...] | list[Doc], kind: str, name: str) -> Doc:
    found = find(docs, kind, name)
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def pod_templates(docs: tuple[Doc, ...] | list[Doc]) -> Iterator[tuple[str, Doc]]:
    """(workload name, pod spec) of every Deployment and StatefulSet."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def container(docs: tuple[Doc, ...] | list[Doc], component: str) -> Doc:
    deployment = one(docs, "Deployment", f"{RELEASE}-{component}")
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env_of(ctr: Doc) -> dict[str, Any]:
    """A container's env entries by name (value, or the valueFrom mapping)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in ctr.get("env", [])}


def config_data(docs: tuple[Doc, ...] | list[Doc]) -> dict[str, str]:
    return dict(one(docs, "ConfigMap", RELEASE)["data"])


def leaf_keys(values: Any, prefix: str = "") -> Iterator[str]:
    """Dotted paths of every leaf of a values tree (a list or an empty map is a leaf)."""
    if isinstance(values, dict) and values:
        for key, value in values.items():
            yield from leaf_keys(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip(".")
