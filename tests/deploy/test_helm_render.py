"""The chart, linted and rendered offline for every values variant; each manifest validated
against Kubernetes' own schemas, and what it says checked against the code it deploys."""

from __future__ import annotations

import copy
import re
import time
from typing import Any

import helm_python
import kubernetes_validate.utils as kube  # type: ignore[import-untyped]
import pytest

from queuectl.core.health import Health, app
from queuectl.core.metrics import (
    QUEUE_STATES,
    ClusterCollector,
    ClusterSnapshot,
    QueueGauges,
    new_registry,
)
from queuectl.core.settings import load_settings
from queuectl.scheduler.main import METRICS_PORT as SCHEDULER_PORT
from queuectl.worker.main import METRICS_PORT as WORKER_PORT
from tests.deploy.chart import (
    CHART,
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    VARIANTS,
    Doc,
    config_data,
    container,
    env_of,
    find,
    one,
    pod_templates,
    render,
    render_files,
    rendered,
)

CUSTOM_GROUPS = ("keda.sh/", "monitoring.coreos.com/")
PORTS = {"scheduler": SCHEDULER_PORT, "worker": WORKER_PORT}


def is_custom(doc: Doc) -> bool:
    return str(doc["apiVersion"]).startswith(CUSTOM_GROUPS)


def test_chart_lints_clean() -> None:
    result = helm_python.lint(str(CHART), VARIANTS["defaults (external redis.url)"],
                              strict=True, namespace=NAMESPACE, kube_version=KUBE_VERSION)
    assert result["errors"] == []
    # Helm's only remark is the missing icon (INFO): no warning, no error.
    assert [m["error"] for m in result["messages"] if m["severity"] > 1] == []


def test_every_variant_validates_against_kubernetes(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    counts: dict[str, int] = {}
    for variant in VARIANTS:
        docs = rendered(variant)
        for doc in docs:
            if is_custom(doc):
                continue  # tests/deploy/test_helm_crds.py checks these
            where = f"{variant}: {doc['kind']}/{doc['metadata']['name']}"
            try:
                kube.validate(doc, KUBE_VERSION, strict=True)
            except (kube.ValidationError, kube.SchemaNotFoundError) as exc:
                pytest.fail(f"{where}: {str(exc).splitlines()[0]}")
        counts[variant] = len(docs)
    with capsys.disabled():  # the list goes into the note
        print(f"\nchart variants rendered and validated (Kubernetes {KUBE_VERSION}, strict), "
              f"{time.monotonic() - started:.1f}s:")
        for variant, count in counts.items():
            kinds = sorted({d["kind"] for d in rendered(variant)})
            print(f"  {variant}: {count} manifests ({', '.join(kinds)})")


def test_the_validator_is_strict() -> None:
    # A misspelt field must fail, or the test above proves nothing.
    worker = copy.deepcopy(one(rendered("defaults (external redis.url)"), "Deployment",
                               f"{RELEASE}-worker"))
    worker["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kube.ValidationError, match="livenesProbe"):
        kube.validate(worker, KUBE_VERSION, strict=True)


def test_probes_ask_the_health_endpoint_of_each_service() -> None:
    docs = rendered("defaults (external redis.url)")
    for component, port in PORTS.items():
        ctr = container(docs, component)
        (metrics,) = ctr["ports"]
        assert (metrics["name"], metrics["containerPort"]) == ("metrics", port)
        assert env_of(ctr)["QUEUECTL_METRICS_PORT"] == str(port)
        assert ctr["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert ctr["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        service = one(docs, "Service", f"{RELEASE}-{component}-metrics")
        assert service["spec"]["ports"][0]["port"] == port
        assert service["spec"]["publishNotReadyAddresses"] is True
    # The paths are the service's: a hung-free process is live while Redis is down.
    health = Health(stuck_after=150)
    health.redis_down("heartbeat")
    serve = app(new_registry("worker"), health)
    answers = {}
    for path in ("/healthz", "/readyz"):
        status: list[str] = []
        body = b"".join(serve({"PATH_INFO": path}, lambda s, h, st=status: st.append(s)))
        answers[path] = (status[0], body.decode().strip())
    assert answers["/healthz"] == ("200 OK", "ok")
    assert answers["/readyz"][0].startswith("503")


def test_worker_processes_are_probed_each_by_the_worker_itself() -> None:
    # An HTTP probe reaches process 0 alone; `--check` asks every process's endpoint.
    variant = VARIANTS["defaults (external redis.url)"]
    ctr = container(render({**variant, "worker": {"processes": 3}}), "worker")
    assert env_of(ctr)["QUEUECTL_WORKER_PROCESSES"] == "3"
    assert ctr["livenessProbe"]["exec"]["command"] == ["queuectl-worker", "--check", "live"]
    assert ctr["readinessProbe"]["exec"]["command"] == ["queuectl-worker", "--check", "ready"]


def test_every_container_is_locked_down() -> None:
    for variant in VARIANTS:
        for workload, pod in pod_templates(rendered(variant)):
            where = f"{variant}: {workload}"
            assert pod["automountServiceAccountToken"] is False, where
            assert pod["securityContext"]["runAsNonRoot"] is True, where
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
            volumes = {v["name"]: v for v in pod.get("volumes", [])}
            for ctr in pod["containers"]:
                sc = ctr["securityContext"]
                assert sc["readOnlyRootFilesystem"] is True, where
                assert sc["allowPrivilegeEscalation"] is False, where
                assert sc["runAsNonRoot"] is True, where
                assert sc["capabilities"] == {"drop": ["ALL"]}, where
                assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
                if workload != f"{RELEASE}-redis":
                    assert sc["runAsUser"] == 10001, where  # the images' user
                for mount in ctr.get("volumeMounts", []):
                    # Writable places are emptyDirs, or the bundled Redis' own PVC.
                    volume = volumes.get(mount["name"], {})
                    assert "emptyDir" in volume or workload == f"{RELEASE}-redis", where


def test_writable_volumes_cover_the_directories_queuectl_writes() -> None:
    docs = rendered("read-only root + tracing + tmp size limit")
    data = config_data(docs)
    for component in ("scheduler", "worker", "cli"):
        mounts = {m["mountPath"] for m in container(docs, component)["volumeMounts"]}
        assert {"/tmp", data["QUEUECTL_DATA_DIR"], data["QUEUECTL_LOG_DIR"]} <= mounts
    worker = one(docs, "Deployment", f"{RELEASE}-worker")["spec"]["template"]["spec"]
    tmp = next(v for v in worker["volumes"] if v["name"] == "tmp")
    assert tmp["emptyDir"] == {"sizeLimit": "2Gi"}


def test_the_configmap_is_what_queuectl_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = rendered("several schedulers, long drain, CLI off")
    data = config_data(docs)
    for name, value in data.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("QUEUECTL_REDIS_URL", "redis://localhost:6379/0")
    settings = load_settings()  # the services' own parsing and bounds
    fields = set(type(settings).model_fields)
    policy = set(type(settings.policy).model_fields)
    for name in data:  # Settings ignores unknown variables: a typo would be silent
        field = name.removeprefix("QUEUECTL_").lower()
        if field.startswith("policy__"):
            assert field.removeprefix("policy__") in policy, name
        else:
            assert field in fields, name
    assert settings.shutdown_grace == 3600
    assert settings.kill_grace == 10
    assert settings.queues == ["default"]
    assert settings.policy.completed_ttl == 86400
    # Everything but what each pod sets itself (or must not be shared) comes from here.
    per_pod = {"redis_url", "metrics_port", "metrics_addr", "worker_id", "worker_processes",
               "policy"}
    assert {n.removeprefix("QUEUECTL_").lower() for n in data} | per_pod >= fields


def test_worker_grace_outlasts_the_drain() -> None:
    for variant in VARIANTS:
        docs = rendered(variant)
        data = config_data(docs)
        drain = float(data["QUEUECTL_SHUTDOWN_GRACE"]) + float(data["QUEUECTL_KILL_GRACE"])
        pod = one(docs, "Deployment", f"{RELEASE}-worker")["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] > drain, variant
        hook = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
        # SIGTERM at once, then wait: never a sleep that keeps the worker fetching.
        assert hook[:2] == ["/bin/sh", "-c"]
        assert hook[2].startswith("kill -TERM 1;")


def test_redis_url_comes_from_the_secret() -> None:
    docs = rendered("defaults (external redis.url)")
    secret = one(docs, "Secret", f"{RELEASE}-redis")
    assert secret["stringData"]["redis-url"] == "redis://:s3cret@redis.data.svc:6379/0"
    for component in ("scheduler", "worker", "cli"):
        ref = env_of(container(docs, component))["QUEUECTL_REDIS_URL"]["secretKeyRef"]
        assert ref == {"name": f"{RELEASE}-redis", "key": "redis-url"}
    own = rendered("existingSecret")
    assert find(own, "Secret") == []
    ref = env_of(container(own, "worker"))["QUEUECTL_REDIS_URL"]["secretKeyRef"]
    assert ref == {"name": "my-redis", "key": "url"}
    bundled = rendered("bundled Redis (AOF on a PVC)")
    url = one(bundled, "Secret", f"{RELEASE}-redis")["stringData"]["redis-url"]
    assert url == f"redis://:s3cret@{RELEASE}-redis:6379/0"
    one(bundled, "Service", f"{RELEASE}-redis")


def test_bundled_redis_keeps_an_append_only_file_on_a_pvc() -> None:
    redis = one(rendered("bundled Redis (AOF on a PVC)"), "StatefulSet", f"{RELEASE}-redis")
    script = redis["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert "--appendonly yes" in script and "--dir /data" in script
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    ephemeral = one(rendered("bundled Redis without persistence"), "StatefulSet",
                    f"{RELEASE}-redis")
    assert "volumeClaimTemplates" not in ephemeral["spec"]


def test_scheduler_replicas_and_autoscaler_ownership() -> None:
    docs = rendered("several schedulers, long drain, CLI off")
    assert one(docs, "Deployment", f"{RELEASE}-scheduler")["spec"]["replicas"] == 3
    assert one(docs, "Deployment", f"{RELEASE}-worker")["spec"]["replicas"] == 6
    assert find(docs, "Deployment", f"{RELEASE}-cli") == []
    # An autoscaled Deployment has no replicas field: `helm upgrade` must not reset it.
    for variant in ("HPA on CPU (scheduler and workers)", "KEDA, Prometheus trigger"):
        assert "replicas" not in one(rendered(variant), "Deployment",
                                     f"{RELEASE}-worker")["spec"]
    hpa = one(rendered("HPA on CPU (scheduler and workers)"), "HorizontalPodAutoscaler",
              f"{RELEASE}-worker")
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{RELEASE}-worker"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_pod_disruption_budgets_select_their_pods() -> None:
    docs = rendered("defaults (external redis.url)")
    for component in ("scheduler", "worker"):
        pdb = one(docs, "PodDisruptionBudget", f"{RELEASE}-{component}")
        deployment = one(docs, "Deployment", f"{RELEASE}-{component}")
        assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
        assert pdb["spec"]["maxUnavailable"] == 1


def test_network_policies_allow_only_redis_otlp_dns_and_metrics() -> None:
    docs = rendered("NetworkPolicy, external Redis and OTLP (gRPC)")
    for component in ("scheduler", "worker"):
        policy = one(docs, "NetworkPolicy", f"{RELEASE}-{component}")["spec"]
        assert policy["policyTypes"] == ["Ingress", "Egress"]
        (ingress,) = policy["ingress"]
        assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]
        ports = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
        expected = {(53, "UDP"), (53, "TCP"), (6379, "TCP"), (4317, "TCP")}
        if component == "worker":
            expected.add((443, "TCP"))  # workerExtraEgress: what the jobs need
        assert ports == expected, component
    cli = one(docs, "NetworkPolicy", f"{RELEASE}-cli")["spec"]
    assert cli["ingress"] == []
    ports = {(p["port"], p["protocol"]) for rule in cli["egress"] for p in rule["ports"]}
    assert ports == {(53, "UDP"), (53, "TCP"), (6379, "TCP"), (4317, "TCP")}
    bundled = rendered("NetworkPolicy, bundled Redis")
    redis = one(bundled, "NetworkPolicy", f"{RELEASE}-redis")["spec"]
    assert redis["egress"] == []
    worker = one(bundled, "NetworkPolicy", f"{RELEASE}-worker")["spec"]
    to_redis = [r for r in worker["egress"] if r.get("to")]
    assert to_redis[0]["to"][0]["podSelector"]["matchLabels"][
        "app.kubernetes.io/component"] == "redis"


def _trigger(variant: str) -> dict[str, Any]:
    scaled = one(rendered(variant), "ScaledObject", f"{RELEASE}-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == f"{RELEASE}-worker"
    (trigger,) = scaled["spec"]["triggers"]
    return dict(trigger)


def test_keda_prometheus_query_counts_pending_and_running_jobs() -> None:
    import promql_parser

    trigger = _trigger("KEDA, Prometheus trigger")
    meta = trigger["metadata"]
    assert trigger["type"] == "prometheus"
    assert (meta["threshold"], meta["activationThreshold"]) == ("4", "0")
    assert meta["ignoreNullValues"] == "false"
    expr = promql_parser.parse(meta["query"])
    assert isinstance(expr, promql_parser.AggregateExpr) and str(expr.op) == "sum"
    selector = expr.expr
    assert isinstance(selector, promql_parser.VectorSelector)
    # The metric the scheduler really exports, with its real label values.
    collector = ClusterCollector()
    collector.snapshot = ClusterSnapshot([QueueGauges("high", {}, 0.0, 0)], {})
    families = {m.name: m for m in collector.collect()}
    assert selector.name in families
    matchers = {m.name: m.value for m in selector.matchers.matchers}
    assert set(matchers) == {"queue", "state"}
    states = {s for s in QUEUE_STATES if re.fullmatch(matchers["state"], s)}
    assert states == {"pending", "processing"}
    for queue in ("high", "default", "reports.v2"):
        assert re.fullmatch(matchers["queue"], queue), queue
    assert not re.fullmatch(matchers["queue"], "reportsXv2")  # the dot is literal


def test_keda_redis_trigger_watches_the_queue_list() -> None:
    from queuectl.core.keys import Keys

    trigger = _trigger("KEDA, redis trigger + TriggerAuthentication")
    meta = trigger["metadata"]
    assert trigger["type"] == "redis"
    assert meta["listName"] == Keys("{queuectl}").queue("high")
    assert (meta["listLength"], meta["activationListLength"]) == ("8", "2")
    assert meta["address"] == "redis.data.svc:6379"
    auth = one(rendered("KEDA, redis trigger + TriggerAuthentication"),
               "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "password", "name": f"{RELEASE}-redis", "key": "redis-password"}]
    bundled = _trigger("KEDA, redis trigger on the bundled Redis")["metadata"]
    assert bundled["listName"] == Keys("queuectl").queue("default")
    assert bundled["address"] == f"{RELEASE}-redis:6379"


def test_monitoring_objects_follow_the_values() -> None:
    on = rendered("ServiceMonitor + PrometheusRule on")
    for component in ("scheduler", "worker"):
        monitor = one(on, "ServiceMonitor", f"{RELEASE}-{component}")
        assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
        service = one(on, "Service", f"{RELEASE}-{component}-metrics")
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= service["metadata"]["labels"].items()
    assert one(on, "PrometheusRule", RELEASE)["metadata"]["labels"]["release"] == "kps"
    dashboard = one(on, "ConfigMap", f"{RELEASE}-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = (CHART.parents[1] / "grafana" / "queuectl-dashboard.json").read_text("utf-8")
    assert dashboard["data"]["queuectl-dashboard.json"] == shipped.rstrip("\n")
    off = rendered("monitoring off (no dashboard, no ServiceMonitor, no rules)")
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert find(off, kind) == []
    assert find(off, "ConfigMap", f"{RELEASE}-dashboard") == []


def test_notes_tell_how_to_reach_the_cli() -> None:
    notes = render_files(VARIANTS["defaults (external redis.url)"])["queuectl/templates/NOTES.txt"]
    assert f"kubectl exec deploy/{RELEASE}-cli -- queuectl status" in notes
    other = render_files(VARIANTS["defaults (external redis.url)"], name="jobs-prod")
    assert "kubectl exec deploy/jobs-prod-cli -- queuectl status" in other[
        "queuectl/templates/NOTES.txt"]
