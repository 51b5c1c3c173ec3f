"""Metrics of real worker and scheduler processes, checked against what Redis holds.

Workers export what they did and the scheduler (one lease-holding replica) what the
cluster holds, so a sum over every process is right: two worker processes and a
scheduler here, as on a host running several pods.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from queuectl.core.client import Client
from queuectl.core.metrics import OUTCOMES
from tests.redis_server import free_port

from .metrics_scrape import by_state, label_values, merged, scrape, scrape_soon, total
from .procs import BIN, Procs, eventually

# Label names the services use, plus those of prometheus-client's own collectors.
ALLOWED_LABELS = {"queue", "outcome", "state", "source", "operation", "le", "version",
                  "service", "implementation", "major", "minor", "patchlevel", "generation"}


def _status(env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run([str(BIN / "queuectl"), "status", "--json"], env=env,
                          capture_output=True, text=True, timeout=30, check=True)
    return dict(json.loads(done.stdout))


@pytest.mark.slow
def test_sums_over_two_workers_and_a_scheduler_match_redis(procs: Procs, client: Client,
                                                           env: dict[str, str]) -> None:
    fast = {"QUEUECTL_POLICY__BACKOFF_BASE": "0.2", "QUEUECTL_CONCURRENCY": "2"}
    ports = [free_port() for _ in range(3)]
    procs.scheduler({**fast, "QUEUECTL_METRICS_PORT": str(ports[0])})
    for port in ports[1:]:
        procs.worker({**fast, "QUEUECTL_METRICS_PORT": str(port)})
    client.config_set("backoff-base", "0.2")
    ids = [client.enqueue("echo ok", job_id=f"ok{i}").id for i in range(10)]
    ids += [client.enqueue("echo failing; exit 3", job_id=f"bad{i}", max_retries=1).id
            for i in range(3)]
    ids += [client.enqueue("true", job_id=f"later{i}", delay=0.5).id for i in range(2)]
    ids.append(client.enqueue("sleep 60", job_id="long").id)
    # Nobody takes this queue: its jobs wait, and their age grows.
    ids += [client.enqueue("true", job_id=f"idle{i}", queue="idle").id for i in range(2)]

    def settled() -> bool:
        st = client.status()
        return (st.states["completed"] == 12 and st.states["dead"] == 3
                and st.states["processing"] == 1)

    eventually(settled, 30, what="12 completed, 3 dead, 1 running")
    # The lease holder refreshes its gauges every heartbeat interval (0.5 s here).
    eventually(lambda: by_state(scrape_soon(ports[0]), "default").get("dead") == 3,
               what="the scheduler's gauges caught up")
    workers = [scrape(p) for p in ports[1:]]
    scheduler = scrape(ports[0])
    redis_status = _status(env)
    everything = merged(scheduler, *workers)

    queues = {q["name"]: q for q in redis_status["queues"]}  # type: ignore[attr-defined]
    default = queues["default"]
    # What the workers did, summed over both processes, is what Redis counted.
    started = total(everything, "queuectl_jobs_started_total", queue="default")
    assert started == (default["totals"]["runs_completed"] + default["totals"]["runs_failed"]
                       + default["processing"]) == 19
    assert total(everything, "queuectl_jobs_finished_total", queue="default",
                 outcome="succeeded") == default["totals"]["runs_completed"] == 12
    assert total(everything, "queuectl_jobs_finished_total", queue="default",
                 outcome="retried") == default["totals"]["retries"] == 3
    assert total(everything, "queuectl_jobs_finished_total", queue="default",
                 outcome="dead") == default["totals"]["buried"] == 3
    assert total(everything, "queuectl_job_wait_seconds_count", queue="default") == 19
    assert total(everything, "queuectl_job_duration_seconds_count", queue="default") == 18
    assert total(everything, "queuectl_worker_slots") == 4
    assert total(everything, "queuectl_worker_busy_slots") == 1
    assert total(everything, "queuectl_job_output_bytes_total", queue="default") >= 16 * 3
    # Both workers took part: the numbers really are sums.
    assert all(total(w, "queuectl_jobs_started_total") > 0 for w in workers)

    # The scheduler's own counters.
    assert total(scheduler, "queuectl_promoted_total", queue="default", source="retry") == 3
    assert total(scheduler, "queuectl_promoted_total", queue="default", source="delayed") == 2
    assert total(scheduler, "queuectl_promotion_lag_seconds_count") == 5
    assert total(scheduler, "queuectl_scheduler_leader") == 1

    # The cluster gauges are what status --json says; summing over every process (the
    # workers export none) does not count anything twice.
    for name, q in queues.items():
        gauges = by_state(everything, name)
        assert gauges == {"pending": q["pending"], "scheduled": q["scheduled"],
                          "retrying": q["failed"], "processing": q["processing"],
                          "dead": q["dead"]}, name
        assert total(everything, "queuectl_retries_due", queue=name) == q["retries_due"]
    assert by_state(everything, "idle")["pending"] == 2
    assert by_state(everything, "default") == {"pending": 0, "scheduled": 0, "retrying": 0,
                                               "processing": 1, "dead": 3}
    idle_age = total(everything, "queuectl_queue_oldest_job_age_seconds", queue="idle")
    assert idle_age > 0 and queues["idle"]["oldest_ready_age"] > 0
    assert total(everything, "queuectl_workers", state="running") == 2

    # Bounded labels only: no job id, command or worker id is ever a label value.
    values = label_values(everything)
    assert set(values) <= ALLOWED_LABELS
    leaked = {v for vs in values.values() for v in vs} & {*ids, "echo ok", "sleep 60"}
    assert not leaked
    assert values["queue"] == {"default", "idle"}
    # Every outcome's series exists from the start (at 0, so rate() sees a first event);
    # only those that happened have counts.
    assert values["outcome"] == set(OUTCOMES)
    counted = {labels["outcome"] for name, labels, value in everything
               if name == "queuectl_jobs_finished_total" and value}
    assert counted == {"succeeded", "retried", "dead"}


@pytest.mark.slow
def test_only_the_lease_holder_exports_the_cluster_gauges(procs: Procs, client: Client) -> None:
    ports = [free_port(), free_port()]
    first = procs.scheduler({"QUEUECTL_METRICS_PORT": str(ports[0])})
    eventually(lambda: total(scrape_soon(ports[0]), "queuectl_scheduler_leader") == 1,
               what="the first scheduler leads")
    procs.scheduler({"QUEUECTL_METRICS_PORT": str(ports[1])})
    client.enqueue("true", job_id="j1", queue="q")
    eventually(lambda: by_state(scrape_soon(ports[0]), "q").get("pending") == 1,
               what="the leader exports q")
    # On a loaded machine the second replica may still be starting its endpoint.
    eventually(lambda: any(n == "queuectl_scheduler_leader" for n, _, _ in scrape_soon(ports[1])),
               what="the second scheduler serves /metrics")
    second = scrape(ports[1])
    assert total(second, "queuectl_scheduler_leader") == 0
    assert not by_state(second, "q") and not by_state(second, "default")
    # Summed over both replicas, the queue is counted once.
    assert by_state(merged(scrape(ports[0]), scrape(ports[1])), "q")["pending"] == 1

    # The leader dies without a word: the other replica takes over once the lease ends.
    first.signal(signal.SIGKILL)
    first.wait_exit()
    eventually(lambda: by_state(scrape(ports[1]), "q").get("pending") == 1, 20,
               what="the second scheduler exports q after the first died")
    assert total(scrape(ports[1]), "queuectl_scheduler_leader") == 1


def test_a_port_given_and_taken_stops_the_service_a_default_one_does_not(
        procs: Procs, env: dict[str, str], tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = procs.worker({"QUEUECTL_METRICS_PORT": str(port)})
        assert worker.wait_exit() == 1
        lines = worker.stderr().strip().splitlines()
        assert lines[-1].startswith(f"queuectl-worker: error: cannot serve metrics on "
                                    f"0.0.0.0:{port}: ")
        assert "QUEUECTL_METRICS_PORT" in lines[-1]

    # The default port (9750) held by someone else, as on a laptop running two workers:
    # one warning, and the worker works without an endpoint.
    with socket.socket() as default:
        default.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            default.bind(("0.0.0.0", 9750))
            default.listen()
        except OSError:
            pass  # another process holds it already: the same situation
        no_port = {k: v for k, v in env.items() if k != "QUEUECTL_METRICS_PORT"}
        procs.env = no_port
        worker = procs.worker()
        eventually(lambda: "running without /metrics" in worker.stderr(),
                   what="the warning about the default port")
        assert worker.alive()
        worker.signal(signal.SIGTERM)
        assert worker.wait_exit() == 0
