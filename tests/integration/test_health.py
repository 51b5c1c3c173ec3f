"""/healthz and /readyz of real services, and the --check form for exec probes.

Liveness must not fail while Redis is down (a restarted pod would not bring Redis
back); readiness must.
"""

from __future__ import annotations

import signal
import subprocess
from functools import partial

import pytest

from queuectl.core.client import Client
from tests.redis_server import LocalRedis, free_port

from .metrics_scrape import get
from .procs import BIN, Procs, eventually


def ready(port: int) -> bool:
    return get(port, "/readyz") == (200, "ok\n")


def unready(port: int) -> str | None:
    """The /readyz body while it answers 503, else None (for polling)."""
    status, body = get(port, "/readyz")
    return body if status == 503 else None


def check(program: str, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = subprocess.run([str(BIN / program), "--check", *args], env=env,
                          capture_output=True, text=True, timeout=30, check=False)
    return done.returncode, done.stdout.strip(), done.stderr.strip()


@pytest.mark.slow
def test_redis_down_makes_services_unready_but_not_unhealthy(
        procs: Procs, env: dict[str, str], own_redis: LocalRedis) -> None:
    ports = {"queuectl-worker": free_port(), "queuectl-scheduler": free_port()}
    envs = {name: {**env, "QUEUECTL_REDIS_URL": own_redis.url,
                   "QUEUECTL_METRICS_PORT": str(port)} for name, port in ports.items()}
    for name, service_env in envs.items():
        procs.start(name, service_env)
    for name, port in ports.items():
        eventually(partial(ready, port), what=f"{name} ready")
        assert check(name, envs[name], "ready") == (0, "ok", "")

    own_redis.stop()
    for name, port in ports.items():
        body = eventually(partial(unready, port), what=f"{name} unready without Redis")
        assert body is not None and body.startswith("Redis is unreachable")
        assert get(port, "/healthz") == (200, "ok\n")
        code, out, _ = check(name, envs[name], "ready")
        assert code == 1 and out.startswith("Redis is unreachable")
        assert check(name, envs[name]) == (0, "ok", "")  # live, the default

    own_redis.start()
    for name, port in ports.items():
        eventually(partial(ready, port), 30, what=f"{name} ready again")


@pytest.mark.slow
def test_a_draining_worker_is_live_but_not_ready(procs: Procs, client: Client,
                                                 env: dict[str, str]) -> None:
    port = free_port()
    worker = procs.worker({"QUEUECTL_METRICS_PORT": str(port)})
    client.enqueue("sleep 30", job_id="long")
    eventually(lambda: client.get("long").state.value == "processing", what="the job runs")
    worker.signal(signal.SIGTERM)
    body = eventually(lambda: unready(port), what="unready while draining")
    assert body == "draining: no new jobs are taken\n"
    assert get(port, "/healthz") == (200, "ok\n")
    worker.signal(signal.SIGTERM)  # a second signal: hand the job back now
    assert worker.wait_exit() == 0


def test_check_says_what_it_could_not_do(env: dict[str, str]) -> None:
    port = free_port()  # nothing listens there
    code, out, err = check("queuectl-worker", {**env, "QUEUECTL_METRICS_PORT": str(port)})
    assert code == 1 and out.startswith(f"no answer from http://127.0.0.1:{port}/healthz")
    assert err == ""
    code, out, err = check("queuectl-scheduler", env)  # the test env sets the port to 0
    assert (code, out) == (1, "")
    assert err == "queuectl-scheduler: error: no health endpoint: QUEUECTL_METRICS_PORT is 0"
    code, out, err = check("queuectl-worker", env, "bogus")
    assert (code, out) == (2, "")
    assert err == "queuectl-worker: error: --check takes 'live' or 'ready', not 'bogus'"
    code, _, err = check("queuectl-worker", {**env, "QUEUECTL_METRICS_PORT": "x"})
    assert code == 3 and err.startswith("queuectl-worker: error: invalid environment "
                                        "QUEUECTL_METRICS_PORT")
