"""``enqueue --file`` when Redis refuses part-way: an exact report, and a safe re-run."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import redis

from queuectl.core.client import Client
from queuectl.core.settings import Settings
from queuectl.core.store import as_str
from tests.redis_server import LocalRedis

from .helpers import Cli, assert_error, assert_ok
from .schemas import check

JOBS = 3000
COMMAND = "echo " + "x" * 2000  # about 2 KiB a job: 6 MB in all


def write_jobs(path: Path, count: int = JOBS, *, with_ids: bool = True) -> None:
    with path.open("w") as f:
        for i in range(count):
            job = {"id": f"m{i:05d}", "command": f"{COMMAND} {i}"} if with_ids else {
                "command": f"{COMMAND} {i}"}
            f.write(json.dumps(job) + "\n")


def stored_ids(r: redis.Redis, prefix: str) -> list[str]:
    """Ids of every job record under ``prefix``."""
    return sorted(as_str(k).removeprefix(f"{prefix}:jobs:")
                  for k in r.scan_iter(match=f"{prefix}:jobs:*", count=1000))


@pytest.mark.parametrize("output", ["text", "--json", "--quiet"])
def test_maxmemory_part_way_is_reported_exactly_and_a_rerun_completes(
        cli: Cli, env: dict[str, str], own_redis: LocalRedis, key_prefix: str,
        tmp_path: Path, output: str) -> None:
    r = redis.Redis.from_url(own_redis.url)
    env = env | {"QUEUECTL_REDIS_URL": own_redis.url}
    path = tmp_path / "jobs.jsonl"
    write_jobs(path)
    used = int(r.info("memory")["used_memory"])
    r.config_set("maxmemory-policy", "noeviction")
    # Room for some of the jobs: a chunk of 1000 (about 2 MB here, one script call) needs
    # about twice its size free when it starts (the request, its arguments), and stores
    # about 2.5 MB.
    r.config_set("maxmemory", used + 8 * 1024 * 1024)
    try:
        result = cli("enqueue", "--file", str(path), *([output] if output != "text" else []),
                     env=env)
    finally:
        r.config_set("maxmemory", 0)

    line = assert_error(result, 6, "stopped at line ",
                        "Redis refused the job: out of memory (used memory > maxmemory)")
    match = re.search(r"stopped at line (\d+): .*; (\d+) of 3000 jobs enqueued, 0 skipped; "
                      r"(\d+) not sent; running the same file again skips", line)
    assert match is not None, line
    stop_line, enqueued, not_sent = (int(n) for n in match.groups())
    ids = stored_ids(r, key_prefix)  # in file order: m00000, m00001, ...
    # Every output says exactly what was stored; --json and --quiet name each job.
    if output == "text":
        assert result.out == f"enqueued {enqueued} jobs\n"
    elif output == "--json":
        summary = check(json.loads(result.out), "enqueue-file")
        assert (summary["enqueued"], summary["ids"]) == (enqueued, ids)
    else:
        assert result.out.splitlines() == ids
    # The report is exact: what it says was stored is what Redis holds, on the queue too.
    assert 0 < enqueued < JOBS
    assert len(ids) == enqueued
    assert r.llen(f"{key_prefix}:jobs") == enqueued
    # A chunk is stored whole or not at all: every line before the one that stopped it is
    # stored, that line (the first of its chunk) and the rest of its chunk are not; no
    # chunk after it was sent (a chunk is 1000 lines here).
    assert stop_line % 1000 == 1
    assert set(ids) == {f"m{i:05d}" for i in range(stop_line - 1)}
    assert not_sent == JOBS - 1000 * math.ceil(stop_line / 1000)

    # Memory freed: the same file again stores exactly the rest.
    out = assert_ok(cli("enqueue", "--file", str(path), env=env))
    assert out.splitlines()[0] == f"enqueued {JOBS - enqueued} jobs, skipped {enqueued} existing"
    queue = [as_str(i) for i in r.lrange(f"{key_prefix}:jobs", 0, -1)]
    assert len(queue) == JOBS and len(set(queue)) == JOBS
    assert stored_ids(r, key_prefix) == sorted(f"m{i:05d}" for i in range(JOBS))
    r.close()


def test_a_refused_chunk_sends_nothing_after_it(
        cli: Cli, env: dict[str, str], own_redis: LocalRedis, key_prefix: str,
        tmp_path: Path) -> None:
    """Memory already full: the first job is refused, nothing is stored, exit 6."""
    r = redis.Redis.from_url(own_redis.url)
    path = tmp_path / "jobs.jsonl"
    write_jobs(path, 5, with_ids=False)
    r.config_set("maxmemory-policy", "noeviction")
    r.config_set("maxmemory", 1)
    try:
        result = cli("enqueue", "--file", str(path), "--json",
                     env=env | {"QUEUECTL_REDIS_URL": own_redis.url})
    finally:
        r.config_set("maxmemory", 0)
    line = assert_error(result, 6, "stopped at line 1: ", "0 of 5 jobs enqueued, 0 skipped",
                        "0 not sent")
    summary = check(json.loads(result.out), "enqueue-file")
    assert (summary["enqueued"], summary["total"], summary["error"]) == (
        0, 5, line.removeprefix("queuectl: error: "))
    assert summary["ids"] == []
    assert stored_ids(r, key_prefix) == []
    r.close()


def test_enqueue_many_reports_a_refused_job_exactly(settings: Settings,
                                                    own_redis: LocalRedis) -> None:
    """The Python client: a chunk is stored whole or not at all, and BulkEnqueueError
    says so exactly."""
    from queuectl.core.models import JobSpec
    from queuectl.core.store import BulkEnqueueError

    client = Client.connect(settings.model_copy(update={"redis_url": own_redis.url}))
    r = client.redis
    client.enqueue_many([JobSpec(id="first", command="true")])
    r.config_set("maxmemory-policy", "noeviction")
    r.config_set("maxmemory", 1)
    try:
        client.enqueue_many([JobSpec(id="first", command="true"),
                             JobSpec(id="second", command="true")])
    except BulkEnqueueError as exc:
        # Both are one chunk, refused as a whole ("first" would have been skipped).
        assert exc.results == []
        assert (exc.index, exc.refused, exc.unsure, exc.sent, exc.exit_code) == (0, 2, 0, 2, 6)
        assert isinstance(exc.cause, redis.OutOfMemoryError)
    else:
        raise AssertionError("enqueue_many did not raise")
    finally:
        r.config_set("maxmemory", 0)
        client.redis.close()
