"""Helpers of the end-to-end tier: run ``queuectl`` as a user does (the installed console
script, in its own process) and drive jobs through the store as a worker would."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from queuectl.core.client import Client
from queuectl.core.store import Fetched

QUEUECTL = str(Path(sys.executable).parent / "queuectl")
FAKE_WORKER = "e2e-worker"


@dataclass(frozen=True)
class Result:
    """What a run of ``queuectl`` printed and returned."""

    code: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "surrogateescape")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "surrogateescape")


Cli = Callable[..., Result]


def run_cli(env: dict[str, str], args: Sequence[str], *, input: bytes | str | None = None,
            timeout: float = 60) -> Result:
    data = input.encode() if isinstance(input, str) else input
    proc = subprocess.run([QUEUECTL, *args], env=env, input=data, capture_output=True,
                          timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL if data is None else None)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_error(result: Result, code: int, *fragments: str) -> str:
    """The exit code is ``code`` and stderr is one ``queuectl: error:`` line, no traceback."""
    assert result.code == code, (result.code, result.out, result.err)
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("queuectl: error: "), lines[0]
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def assert_ok(result: Result) -> str:
    assert result.code == 0, (result.code, result.out, result.err)
    assert result.err == "", result.err
    return result.out


# -- driving jobs without a worker process: the same Store calls a worker makes ------------------
def take(client: Client, job_id: str, queue: str = "default") -> Fetched:
    """Lease the next job of ``queue`` as a fake worker; it must be ``job_id``."""
    fetched = client.store.fetch(FAKE_WORKER, [queue])
    assert fetched is not None and fetched.id == job_id, fetched
    return fetched


def finish(client: Client, job_id: str, output: bytes = b"", *, exit_code: int = 0,
           queue: str = "default") -> None:
    """Run ``job_id`` to completion (exit 0) or to one failure, shipping ``output``."""
    fetched = take(client, job_id, queue)
    spawned = fetched.server_time(time.monotonic())  # as a worker reports it: Redis's clock
    if exit_code == 0:
        client.store.complete(fetched, FAKE_WORKER, output, len(output), spawned)
    else:
        client.store.fail(fetched, FAKE_WORKER, output, len(output), exit_code,
                          f"exit code {exit_code}", spawned)


def make_dead(client: Client, job_id: str, command: str = "false") -> None:
    """Enqueue a job with no retries and fail it once: it lands in the DLQ."""
    client.enqueue(command, job_id=job_id, max_retries=0)
    finish(client, job_id, b"boom\n", exit_code=1)
    assert client.get(job_id).state.value == "dead"


def register_worker(client: Client, worker_id: str, *, ttl: float = 30.0,
                    queues: str = "default", threads: int = 4) -> None:
    """A heartbeat as a live worker would send it."""
    k = client.keys
    client.store.heartbeat(k.worker(worker_id), k.workers, worker_id, ttl, "t",
                           {"id": worker_id, "threads": str(threads), "queues": queues,
                            "state": "running"})


# -- a Redis that requires a password, for the credential errors --------------------------------
@dataclass(frozen=True)
class SecureRedis:
    port: int
    password: str

    def url(self, password: str | None) -> str:
        auth = f":{password}@" if password is not None else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"


def env_without_url(env: dict[str, str], data_dir: str) -> dict[str, str]:
    """The test environment with QUEUECTL_REDIS_URL unset: the embedded default."""
    out = {k: v for k, v in env.items() if k != "QUEUECTL_REDIS_URL"}
    out["QUEUECTL_DATA_DIR"] = data_dir
    out["HOME"] = data_dir
    return out


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def background(env: dict[str, str], *args: str,
               stdin: int = subprocess.DEVNULL) -> Iterator[subprocess.Popen[bytes]]:
    """``queuectl ARGS`` running in the background; killed (if still running) and its pipes
    closed on the way out, whatever the test did."""
    # A shell without job control starts background commands with SIGINT ignored, and
    # Python keeps it ignored: restore the default so that SIGINT means Ctrl-C here.
    proc = subprocess.Popen([QUEUECTL, *args], env=env, stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_default_sigint)  # noqa: PLW1509
    with proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


# -- peak memory of one CLI run --------------------------------------------------------------
# A forked child's ru_maxrss starts at its parent's RSS (Linux counts the mm it had before
# exec), so the test process, big as it is, must not be the parent: a small Python
# process starts the CLI and reports its peak.
def run_measured(env: dict[str, str], args: Sequence[str], stdin: Path,
                 timeout: float = 60) -> tuple[Result, int]:
    """Run ``queuectl ARGS`` with ``stdin`` from a file; its result and peak RSS in KiB."""
    code = (
        "import os, subprocess, sys\n"
        "with open(sys.argv[1], 'rb') as data:\n"
        "    proc = subprocess.Popen(sys.argv[2:], stdin=data, stdout=subprocess.PIPE,\n"
        "                            stderr=subprocess.PIPE)\n"
        "    out, err = proc.stdout.read(), proc.stderr.read()\n"
        "    _, status, usage = os.wait4(proc.pid, 0)\n"
        "sys.stdout.buffer.write(b'%d %d\\n' % (os.waitstatus_to_exitcode(status),\n"
        "                                       usage.ru_maxrss) + out)\n"
        "sys.stderr.buffer.write(err)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(stdin), QUEUECTL, *args], env=env,
                          capture_output=True, timeout=timeout, check=False)
    head, _, out = proc.stdout.partition(b"\n")
    status, peak = (int(n) for n in head.split())
    return Result(status, out, proc.stderr), peak
