"""Log file retention: a job's ``<id>.log`` goes once its record has left Redis.

Real files in a real LOG_DIR, a real Redis; ages are set with os.utime, never waited for.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from queuectl.core.client import Client
from queuectl.core.health import Health
from queuectl.core.keys import Keys
from queuectl.core.models import JobState
from queuectl.core.policy import Policy
from queuectl.core.settings import Settings
from queuectl.core.store import Store
from queuectl.worker.janitor import MIN_AGE, LogJanitor
from queuectl.worker.logdir import LogDir
from queuectl.worker.pool import Worker
from tests.redis_server import free_port

from .test_pool import settle, stopped_at_the_end

OLD = time.time() - 10 * MIN_AGE


def write(log_dir: Path, name: str, *, old: bool = True) -> Path:
    path = log_dir / name
    path.write_bytes(b"output\n")
    if old:
        os.utime(path, (OLD, OLD))
    return path


def janitor(store: Store, logs: LogDir, running: set[str] | None = None, *,
            batch: int = 1000, interval: float = 60.0,
            health: Health | None = None) -> LogJanitor:
    return LogJanitor(store, logs, lambda: set(running or ()), threading.Event(),
                      health or Health(150.0), interval, batch=batch)


def test_only_old_files_of_jobs_gone_from_redis_are_removed(client: Client, logs: LogDir,
                                                           log_dir: Path) -> None:
    kept_record = client.enqueue("true")
    files = {
        "kept": write(log_dir, f"{kept_record.id}.log"),
        "gone": write(log_dir, "gone.log"),
        "fresh": write(log_dir, "fresh.log", old=False),
        "running": write(log_dir, "running.log"),
        "other": write(log_dir, "notes.txt"),
        "bad-name": write(log_dir, "b@d.log"),
    }
    (log_dir / "link.log").symlink_to(files["gone"])
    sweeper = janitor(client.store, logs, running={"running"})
    try:
        assert sweeper.sweep() == 1
    finally:
        sweeper.close()
    assert not files["gone"].exists()
    assert all(files[k].exists() for k in ("kept", "fresh", "running", "other", "bad-name"))
    assert (log_dir / "link.log").is_symlink()


def test_each_pass_looks_at_a_bounded_slice(client: Client, logs: LogDir,
                                            log_dir: Path) -> None:
    for i in range(10):
        write(log_dir, f"gone{i}.log")
    sweeper = janitor(client.store, logs, batch=3)
    removed = []
    try:
        for _ in range(4):  # 10 names, 3 a pass: the fourth pass ends the scan
            removed.append(sweeper.sweep())
        assert removed == [3, 3, 3, 1]
        assert sweeper.sweep() == 0  # a new scan from the top finds nothing more
    finally:
        sweeper.close()
    assert list(log_dir.iterdir()) == []


def test_an_error_is_one_line_and_the_thread_goes_on(logs: LogDir, log_dir: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    # Redis away: the pass fails, says so in one line, and the next pass tries again.
    write(log_dir, "gone.log")
    url = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there
    away = Store(redis.Redis.from_url(url, socket_connect_timeout=0.2), Keys("away"), Policy())
    health = Health(150.0)
    sweeper = janitor(away, logs, interval=0.05, health=health)
    with caplog.at_level(logging.WARNING, logger="queuectl.worker"):
        sweeper.start()
        deadline = time.monotonic() + 20
        while sum("log retention pass failed" in r.getMessage() for r in caplog.records) < 2:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.05)
        assert sweeper.is_alive() and health.stuck() == []
        sweeper.done.set()
        sweeper.join(10)
    sweeper.close()
    away.redis.close()
    assert not sweeper.is_alive()
    lines = [r for r in caplog.records if "log retention pass failed" in r.getMessage()]
    assert all("\n" not in r.getMessage() and r.exc_info is None for r in lines)
    assert (log_dir / "gone.log").exists()


@pytest.fixture
def sweeping_worker(client: Client, settings: Settings) -> Iterator[Worker]:
    yield from stopped_at_the_end(client, settings, log_sweep_interval=0.1)


def test_a_worker_removes_the_file_once_retention_deletes_the_record(
        sweeping_worker: Worker, client: Client, settings: Settings) -> None:
    k = client.keys
    sweeping_worker.start()
    done = client.enqueue("echo done")
    dead = client.enqueue("echo failed; exit 3", max_retries=0)
    assert settle(client, done.id, JobState.COMPLETED) is JobState.COMPLETED
    assert settle(client, dead.id, JobState.DEAD) is JobState.DEAD
    log_dir = settings.resolved_log_dir
    for job in (done, dead):
        os.utime(log_dir / f"{job.id}.log", (OLD, OLD))
    # completed-ttl passes for the completed job (the scheduler's prune); the dead one is
    # within dead-ttl and dead-max, so its record and its file stay.
    client.redis.hset(k.config, "completed-ttl", "1")
    client.redis.zadd(k.completed, {done.id: OLD})
    assert client.store.prune() == 1
    deadline = time.monotonic() + 30
    while (log_dir / f"{done.id}.log").exists():
        assert time.monotonic() < deadline, "the completed job's log file was not removed"
        time.sleep(0.05)
    assert (log_dir / f"{dead.id}.log").read_bytes().endswith(b"failed\n")
    assert client.get(dead.id).state is JobState.DEAD
