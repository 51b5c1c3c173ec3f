"""End to end: a real Prometheus scrapes a real scheduler and two real workers running
real jobs, and every PromQL expression of the dashboard and of the alert rules is run
against it. A panel whose query returns nothing is a bug.

The run: Redis goes away for a moment (so the services count Redis errors), then two
waves of jobs (successes with output, a job that fails once and then succeeds, jobs
that end in the DLQ after a failure or a timeout, a delayed job) in the queues
``default`` and ``batch``, which both workers serve, and one job in ``parked``, which
none serves. Two waves, so every counter has grown between two scrapes and rate() and
histogram_quantile() have something to show. The run ends when Prometheus's numbers
agree with what Redis says happened.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from queuectl.core.client import Client
from queuectl.core.models import JobState
from queuectl.core.settings import Settings
from tests.integration.procs import Procs, eventually, load_jobs, wait_ended
from tests.redis_server import LocalRedis, free_port

from .prom import LocalPrometheus, Sample
from .queries import (
    RULES,
    PanelQuery,
    alert_leaves,
    alerts,
    load_dashboard,
    panel_queries,
    substitute,
)

pytestmark = pytest.mark.slow

QUEUES = ("default", "batch")
PARKED = "parked"  # no worker serves it: its job waits for ever
# $__rate_interval as Grafana would set it for a few hours' range at a 15 s scrape.
RATE_INTERVAL = "1m"
ALL_STATES = {"pending", "scheduled", "retrying", "processing", "dead"}


def wave(client: Client, n: int) -> list[str]:
    """Enqueue one wave of jobs; their ids. 12 runs in all, 4 of them failures."""
    jobs = [client.enqueue('echo "hello from $QUEUECTL_JOB_ID"', job_id=f"ok-{n}-{i}")
            for i in range(3)]
    jobs.append(client.enqueue('[ "$QUEUECTL_JOB_ATTEMPT" -ge 2 ]', job_id=f"flaky-{n}",
                               max_retries=2))
    jobs.append(client.enqueue("exit 3", job_id=f"doomed-{n}", max_retries=1))
    jobs.append(client.enqueue("sleep 30", job_id=f"slow-{n}", queue="batch", timeout=0.2,
                               max_retries=1))
    jobs += [client.enqueue("true", job_id=f"batch-{n}-{i}", queue="batch") for i in range(2)]
    jobs.append(client.enqueue("date", job_id=f"later-{n}", delay=1.0))
    return [job.id for job in jobs]


@pytest.fixture
def stack(env: dict[str, str], own_redis: LocalRedis, tmp_path: Path,
          prometheus_binary: str) -> Iterator[tuple[LocalPrometheus, Procs, Client]]:
    """Prometheus, a scheduler and two workers on a Redis of this test's own (it is
    stopped for a moment to make real Redis errors)."""
    env = {**env, "QUEUECTL_REDIS_URL": own_redis.url,
           "QUEUECTL_SCHEDULER_INTERVAL": "0.2",
           "QUEUECTL_POLICY__BACKOFF_BASE": "0.3", "QUEUECTL_POLICY__BACKOFF_FACTOR": "1"}
    ports = {"scheduler": free_port(), "w1": free_port(), "w2": free_port()}
    prom = LocalPrometheus(prometheus_binary, tmp_path / "prometheus", {
        "queuectl-scheduler": [f"127.0.0.1:{ports['scheduler']}"],
        "queuectl-worker": [f"127.0.0.1:{ports['w1']}", f"127.0.0.1:{ports['w2']}"],
    }, [RULES]).start()
    procs = Procs(env, tmp_path / "procs")
    client = Client.connect(Settings(redis_url=own_redis.url,
                                     key_prefix=env["QUEUECTL_KEY_PREFIX"],
                                     data_dir=Path(env["QUEUECTL_DATA_DIR"])))
    try:
        procs.scheduler({"QUEUECTL_METRICS_PORT": str(ports["scheduler"])})
        for name in ("w1", "w2"):
            procs.worker({"QUEUECTL_METRICS_PORT": str(ports[name]),
                          "QUEUECTL_QUEUES": ",".join(QUEUES), "QUEUECTL_CONCURRENCY": "2"})
        yield prom, procs, client
    finally:
        client.redis.close()
        procs.cleanup()
        prom.stop()
        print(f"--- prometheus log tail:\n{prom.logs()}")


def up_targets(prom: LocalPrometheus) -> int:
    return len(prom.query("up == 1"))


def test_dashboard_and_rules_against_real_prometheus(
        stack: tuple[LocalPrometheus, Procs, Client], own_redis: LocalRedis) -> None:
    prom, _procs, client = stack
    started = time.monotonic()
    eventually(lambda: up_targets(prom) == 3, 30, what="Prometheus scrapes all three services",
               describe=lambda: f"{prom.query('up')}\n{prom.logs()}")

    # A short Redis outage: both services count failed Redis calls, and carry on.
    own_redis.stop()
    eventually(lambda: len(prom.query("count by (job) (queuectl_redis_errors_total)")) == 2,
               30, what="Redis errors counted by the scheduler and the workers",
               describe=lambda: str(prom.query("queuectl_redis_errors_total")))
    own_redis.start()

    client.enqueue("true", job_id="parked-1", queue=PARKED)
    ids = wave(client, 1)
    wait_ended(client, ids, timeout=40)
    # The second wave only once Prometheus has seen the first, so counters grow between
    # scrapes even for series that the first wave created.
    eventually(lambda: (prom.value("sum(queuectl_jobs_finished_total)") or 0) >= 12, 30,
               what="Prometheus sees the first wave")
    ids += wave(client, 2)
    jobs = wait_ended(client, ids, timeout=40)
    runs = sum(job.attempts for job in jobs.values())
    dead = sum(1 for job in jobs.values() if job.state is JobState.DEAD)
    assert (runs, dead) == (24, 4), {j.id: (j.state, j.attempts) for j in jobs.values()}
    assert load_jobs(client, ["parked-1"])["parked-1"].state is JobState.PENDING

    truth = {
        "sum(queuectl_jobs_started_total)": runs,
        "sum(queuectl_jobs_finished_total)": runs,
        'sum(queuectl_queue_jobs{state="dead"})': dead,
        'sum(queuectl_queue_jobs{state="pending"})': 1,
        'sum(queuectl_queue_jobs{state=~"scheduled|retrying|processing"})': 0,
        'sum(queuectl_promoted_total{source="delayed"})': 2,
        "sum(queuectl_worker_busy_slots)": 0,
    }
    eventually(lambda: all(prom.value(q) == v for q, v in truth.items()), 30,
               what="Prometheus's numbers agree with Redis",
               describe=lambda: str({q: prom.value(q) for q in truth}))

    problems: list[str] = []
    problems += check_dashboard(prom)
    problems += check_alert_expressions(prom)
    problems += check_rules_and_alerts(prom)
    print(f"e2e run took {time.monotonic() - started:.1f}s")
    assert problems == [], "\n".join(problems)


# -- the dashboard -------------------------------------------------------------------------------

def check_dashboard(prom: LocalPrometheus) -> list[str]:
    problems: list[str] = []
    dashboard = load_dashboard()
    # The queue variable: label_values(queuectl_queue_jobs, queue).
    values = prom.api("label/queue/values", **{"match[]": "queuectl_queue_jobs"})
    if not {*QUEUES, PARKED} <= set(values):
        problems.append(f"queue variable lists {values}")
    results: dict[str, list[Sample]] = {}
    for query in panel_queries(dashboard):
        for queue in (".*", "default"):
            expr = substitute(query.expr, queue=queue, rate_interval=RATE_INTERVAL)
            try:
                samples = prom.query(expr)
            except AssertionError as exc:
                problems.append(f"{query.name} ($queue={queue}): {exc}")
                continue
            problems += check_samples(query, queue, samples)
            print(f"{query.name} ($queue={queue}): {describe(samples)}")
            if queue == ".*":
                results[query.name] = samples
    problems += check_known_values(results)
    return problems


def check_samples(query: PanelQuery, queue: str, samples: list[Sample]) -> list[str]:
    where = f"{query.name} ($queue={queue})"
    if not samples:
        return [f"{where}: no data"]
    out: list[str] = []
    for sample in samples:
        labels = sample["metric"]
        missing = query.legend_labels - {k for k, v in labels.items() if v}
        if missing:
            out.append(f"{where}: series {labels} lacks {sorted(missing)} (legend "
                       f"{query.legend!r})")
        if queue != ".*" and labels.get("queue", queue) != queue:
            out.append(f"{where}: series {labels} is not of the selected queue")
    if not any(math.isfinite(float(s["value"][1])) for s in samples):
        out.append(f"{where}: only NaN/Inf: {samples}")
    return out


def describe(samples: list[Sample]) -> str:
    """The result in short, for the log of a run: series count, then label values = value."""
    shown = [",".join(f"{v}" for k, v in sorted(s["metric"].items()) if k != "instance")
             + f"={float(s['value'][1]):.3g}" for s in samples[:6]]
    more = f" (+{len(samples) - 6})" if len(samples) > 6 else ""
    return f"{len(samples)} series: {'; '.join(shown)}{more}"


def _labels(samples: list[Sample], name: str) -> set[str]:
    return {s["metric"].get(name, "") for s in samples}


def _only_value(samples: list[Sample]) -> float:
    (sample,) = samples
    return float(sample["value"][1])


def check_known_values(results: dict[str, list[Sample]]) -> list[str]:
    """What this run must show on particular panels (a renamed panel fails here)."""
    checks: dict[str, Callable[[list[Sample]], bool]] = {
        "Jobs by queue and state [A]": lambda s: (
            {*QUEUES, PARKED} <= _labels(s, "queue") and _labels(s, "state") == ALL_STATES),
        "Finished runs by outcome [A]": lambda s: (
            {"succeeded", "retried", "timeout", "dead"} <= _labels(s, "outcome")),
        "Promotions by source [A]": lambda s: _labels(s, "source") == {"retry", "delayed"},
        "Oldest ready job age [A]": lambda s: any(
            x["metric"]["queue"] == PARKED and float(x["value"][1]) > 0 for x in s),
        "Scheduler leader [A]": lambda s: _only_value(s) == 1,
        "Live workers [A]": lambda s: _only_value(s) == 2,
        "Busy vs total slots [B]": lambda s: _only_value(s) == 4,
        "Workers by state [A]": lambda s: _labels(s, "state") == {"running", "stopping"},
        "DLQ size [A]": lambda s: sum(float(x["value"][1]) for x in s) == 4,
        "Redis errors [A]": lambda s: _labels(s, "job") == {"queuectl-worker",
                                                            "queuectl-scheduler"},
    }
    return [f"{name}: unexpected result {results.get(name)}" for name, check in checks.items()
            if name not in results or not check(results[name])]


# -- the rules -----------------------------------------------------------------------------------

def check_alert_expressions(prom: LocalPrometheus) -> list[str]:
    """Each alert's expression runs; each of its parts, thresholds removed, finds data."""
    problems: list[str] = []
    for alert in alerts():
        try:
            prom.query(alert.expr)
        except AssertionError as exc:
            problems.append(f"{alert.name}: {exc}")
            continue
        for i, leaf in enumerate(alert_leaves(alert.expr)):
            samples = prom.query(leaf)
            print(f"{alert.name}: {leaf}: {describe(samples)}")
            if not samples:
                problems.append(f"{alert.name}: no data for {leaf}")
                continue
            # The first part gives the alert its labels, which the annotations print.
            wanted = alert.annotation_labels if i == 0 else set()
            for sample in samples:
                missing = wanted - {k for k, v in sample["metric"].items() if v}
                if missing:
                    problems.append(f"{alert.name}: {leaf} gives {sample['metric']}, "
                                    f"without {sorted(missing)}")
    return problems


def check_rules_and_alerts(prom: LocalPrometheus) -> list[str]:
    """Prometheus loaded the rules and evaluates them without error; and what this run
    did shows: jobs went to the DLQ, and a job waits in a queue no worker serves."""
    problems: list[str] = []
    rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
    if sorted(r["name"] for r in rules) != sorted(a.name for a in alerts()):
        problems.append(f"Prometheus loaded {[r['name'] for r in rules]}")
    problems += [f"{r['name']}: {r['health']} {r.get('lastError', '')}" for r in rules
                 if r["health"] != "ok"]

    def states() -> dict[tuple[str, str], str]:
        return {(a["labels"]["alertname"], a["labels"].get("queue", "")): a["state"]
                for a in prom.api("alerts")["alerts"]}

    expected = {("QueueCTLDeadLetterGrowing", "default"): "firing",
                ("QueueCTLDeadLetterGrowing", "batch"): "firing",
                # Pending, not firing: it needs 5 minutes of waiting.
                ("QueueCTLJobsWaitingNoWorker", PARKED): "pending"}
    try:
        eventually(lambda: all(states().get(k) == v for k, v in expected.items()), 15,
                   what="the alerts this run must raise", describe=lambda: str(states()))
    except AssertionError as exc:
        problems.append(str(exc))
    return problems
