"""The worker's preStop hook, as the chart renders it, run against a real worker.

In a pod the worker (or the image's init) is PID 1 of the container's PID namespace;
here `unshare --pid` gives a real worker process the same place, and the hook runs in
that namespace through `nsenter`, as the kubelet's exec would. Kubernetes sends its own
SIGTERM only after the hook returns, so the hook must start the drain itself and must
not return before the worker is gone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from queuectl.core.client import Client
from queuectl.core.models import JobState
from tests.deploy.chart import config_data, container, rendered
from tests.integration.procs import descendants, eventually, kill_quietly, wait_state

BIN = Path(sys.executable).parent
# What the test environment sets itself (Redis, key prefix, directories, no fixed port).
OWN = ("QUEUECTL_KEY_PREFIX", "QUEUECTL_DATA_DIR", "QUEUECTL_LOG_DIR", "QUEUECTL_METRICS_PORT")


@pytest.fixture
def namespaces() -> None:
    """unshare and nsenter (util-linux) as root; missing, the test fails in CI."""
    missing = [t for t in ("unshare", "nsenter") if shutil.which(t) is None]
    why = (f"{', '.join(missing)} not installed" if missing
           else "PID namespaces need root" if os.geteuid() != 0 else "")
    if why and os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(why)
    if why:
        pytest.skip(why)


@pytest.fixture
def pod_worker(namespaces: None, env: dict[str, str],
               tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """A worker as PID 1 of its own PID namespace, with the chart's ConfigMap settings.

    Yields (the unshare process, the worker's pid as seen from here, its stderr file).
    """
    settings = {k: v for k, v in config_data(rendered("defaults (external redis.url)")).items()
                if k not in OWN}
    worker_env = {**env, **settings, "QUEUECTL_CONCURRENCY": "2"}
    err = tmp_path / "worker.err"
    with err.open("wb") as err_f, (tmp_path / "worker.out").open("wb") as out_f:
        unshare = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", str(BIN / "queuectl-worker")],
            env=worker_env, stdin=subprocess.DEVNULL, stdout=out_f, stderr=err_f)
    try:
        (pid,) = eventually(lambda: descendants(unshare.pid), what="worker forked")
        yield unshare, pid, err
    finally:
        for pid in [unshare.pid, *descendants(unshare.pid)]:
            kill_quietly(pid)
        unshare.wait()


def test_prestop_hook_drains_the_worker_and_outlives_it(
        pod_worker: tuple[subprocess.Popen[bytes], int, Path], client: Client) -> None:
    unshare, pid, err = pod_worker
    hook = container(rendered("defaults (external redis.url)"), "worker")[
        "lifecycle"]["preStop"]["exec"]["command"]
    eventually(lambda: any(w.alive for w in client.workers()), what="worker registered",
               describe=err.read_text)
    running = client.enqueue("sleep 2; echo done")
    wait_state(client, running.id, JobState.PROCESSING)

    with subprocess.Popen(["nsenter", "-t", str(pid), "-p", "--", *hook]) as prestop:
        eventually(lambda: "draining" in err.read_text(), what="SIGTERM from the hook")
        # A free slot takes nothing once the drain began: nothing is fetched to be dropped.
        behind = client.enqueue("echo behind")
        assert unshare.poll() is None, "the worker waits for its running job"
        assert prestop.poll() is None, "the hook waits for the worker"
        prestop.wait(timeout=30)
    # The hook returned only once the worker had drained and exited: the kubelet's
    # SIGTERM that follows it can no longer cut a grace short.
    assert unshare.wait(timeout=5) == 0, err.read_text()
    done = client.get(running.id)
    assert (done.state, done.attempts, done.interrupted) == (JobState.COMPLETED, 1, 0)
    waiting = client.get(behind.id)
    assert (waiting.state, waiting.attempts) == (JobState.PENDING, 0)
