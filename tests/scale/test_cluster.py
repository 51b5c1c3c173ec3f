"""QueueCTL on a real Redis Cluster of three masters: the whole lifecycle through the CLI and
real worker and scheduler processes, one prefix per slot, prefixes sharded over masters."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from queuectl.core.client import Client
from queuectl.core.settings import Settings
from tests.integration.procs import eventually
from tests.redis_server import free_port

from .conftest import Deployment, deployment
from .servers import LocalCluster


def on_cluster(made: list[Deployment], env: dict[str, str], tmp_path: Path,
               cluster: LocalCluster, prefix: str) -> Deployment:
    # Two seed nodes: either one answering is enough to learn the whole cluster.
    seeds = ",".join(f"127.0.0.1:{p}" for p in cluster.ports[:2])
    return deployment(made, env, tmp_path, redis_url=f"redis://{seeds}/0",
                      redis_cluster="true", key_prefix=prefix, scheduler_interval="0.2")


def keys_on(port: int, prefix: str) -> int:
    node = redis.Redis(port=port)
    try:
        return sum(1 for _ in node.scan_iter(match=f"{prefix}:*", count=1000))
    finally:
        node.close()


def test_lifecycle_on_a_cluster(cluster: LocalCluster, env: dict[str, str], tmp_path: Path,
                                deploy: list[Deployment], tag: str) -> None:
    prefix = f"{{q{tag}}}"
    d = on_cluster(deploy, env, tmp_path, cluster, prefix)
    marks = tmp_path / "marks"
    marks.mkdir()
    d.ok("config", "set", "backoff-base", "0.2")
    d.ok("enqueue", "--id", "ok", "--", "echo hello-cluster")
    d.ok("enqueue", "--id", "later", "--delay", "1s", "--", "echo later")
    far = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    bulk = tmp_path / "jobs.jsonl"
    bulk.write_text("".join(json.dumps(job) + "\n" for job in [
        # Fails on its first run, succeeds on the retry the scheduler promotes.
        {"id": "flaky", "max_retries": 2,
         "command": f"test -e {marks}/flaky || {{ touch {marks}/flaky; exit 1; }}"},
        {"id": "doomed", "max_retries": 1, "command": f"test -e {marks}/doomed"},
        {"id": "never", "run_at": far, "command": "echo never"},
        *({"id": f"bulk-{i}", "command": f"echo bulk {i}"} for i in range(5))]))
    assert "enqueued 8 jobs" in d.ok("enqueue", "--file", str(bulk))
    d.ok("cancel", "never")

    d.procs.worker()
    d.procs.scheduler()
    done = ["ok", "flaky", "later", *(f"bulk-{i}" for i in range(5))]
    d.ok("wait", *done, "--timeout", "30")

    # Polls read through an in-process client: a CLI run per poll costs a process start.
    reader = Client.connect(Settings(redis_url=d.env["QUEUECTL_REDIS_URL"],
                                     redis_cluster=True, key_prefix=prefix))

    def state(job_id: str) -> str | None:
        job = reader.find(job_id)
        return job.state.value if job is not None else None

    eventually(lambda: state("doomed") == "dead", what="doomed reaches the DLQ")
    (marks / "doomed").touch()
    d.ok("dlq", "retry", "doomed")
    d.ok("wait", "doomed", "--timeout", "30")

    flaky = json.loads(d.ok("show", "--json", "flaky"))
    assert (flaky["state"], flaky["attempts"]) == ("completed", 2)
    assert d.ok("logs", "ok").rstrip().endswith("hello-cluster")
    assert state("never") == "cancelled"
    status = json.loads(d.ok("status", "--json"))
    assert status["states"]["completed"] == 9
    assert status["states"]["cancelled"] == 1
    listed = json.loads(d.ok("list", "--json", "--state", "completed"))
    assert {j["id"] for j in listed} == {*done, "doomed"}
    assert "0 problem(s)" in d.ok("doctor")

    # Every key of the prefix is in the one slot, on the one master that owns it.
    owner = cluster.owner(f"{prefix}:jobs")
    assert keys_on(owner, prefix) > 10
    assert all(keys_on(p, prefix) == 0 for p in cluster.ports if p != owner)

    # Retention: the scheduler prunes ended jobs (prune.lua builds their keys in Lua).
    d.ok("config", "set", "completed-ttl", "1")
    eventually(lambda: state("ok") is None and state("never") is None,
               what="ended jobs pruned", timeout=30)
    reader.redis.close()
    assert "0 problem(s)" in d.ok("doctor")


def _tags_on_two_masters(cluster: LocalCluster, tag: str) -> tuple[str, str]:
    """Two hash-tagged prefixes whose slots two different masters own."""
    first = f"{{a{tag}}}"
    owner = cluster.owner(f"{first}:jobs")
    for n in range(1000):
        other = f"{{b{tag}{n}}}"
        if cluster.owner(f"{other}:jobs") != owner:
            return first, other
    raise AssertionError("no second prefix on another master")


def test_prefixes_shard_over_masters(cluster: LocalCluster, env: dict[str, str],
                                     tmp_path: Path, deploy: list[Deployment],
                                     tag: str) -> None:
    # Scaling past one master: a queue group per prefix, each prefix on its own slot,
    # each group with its own workers.
    groups = [on_cluster(deploy, env, tmp_path, cluster, p)
              for p in _tags_on_two_masters(cluster, tag)]
    for n, group in enumerate(groups):
        group.procs.worker()
        jobs = tmp_path / f"group-{n}.jsonl"
        jobs.write_text("".join(json.dumps({"id": f"j{i}", "command": "echo $0"}) + "\n"
                                for i in range(3)).replace("$0", group.env["QUEUECTL_KEY_PREFIX"]))
        group.ok("enqueue", "--file", str(jobs))
    for group in groups:
        group.ok("wait", "j0", "j1", "j2", "--timeout", "30")
        prefix = group.env["QUEUECTL_KEY_PREFIX"]
        assert group.ok("logs", "j2").rstrip().endswith(prefix)
        # A group sees only its own jobs.
        assert json.loads(group.ok("status", "--json"))["states"]["completed"] == 3
    owners = [cluster.owner(f"{g.env['QUEUECTL_KEY_PREFIX']}:jobs") for g in groups]
    assert owners[0] != owners[1]
    for group, owner in zip(groups, owners, strict=True):
        prefix = group.env["QUEUECTL_KEY_PREFIX"]
        assert keys_on(owner, prefix) > 0
        assert all(keys_on(p, prefix) == 0 for p in cluster.ports if p != owner)


def test_cluster_needs_a_hash_tagged_prefix(cluster: LocalCluster, env: dict[str, str],
                                            tmp_path: Path, deploy: list[Deployment]) -> None:
    d = on_cluster(deploy, env, tmp_path, cluster, "plain")
    for code, err in (_cli(d, "status"), _service(d, "queuectl-worker"),
                      _service(d, "queuectl-scheduler")):
        assert code == 3, err
        assert len(err.strip().splitlines()) == 1, err
        assert "QUEUECTL_KEY_PREFIX 'plain' has no hash tag" in err
    # A cluster node given to a client that does not know it is one: said in one line.
    plain = deployment(deploy, env, tmp_path, redis_url=f"redis://127.0.0.1:{cluster.ports[0]}",
                       key_prefix="plain")
    code, err = _cli(plain, "status")
    assert code == 6, err
    assert "is a Redis Cluster node (it answered MOVED" in err
    assert "set QUEUECTL_REDIS_CLUSTER=true" in err


def _cli(d: Deployment, *args: str) -> tuple[int, str]:
    result = d.cli(*args)
    return result.code, result.err


def _service(d: Deployment, program: str) -> tuple[int, str]:
    proc = d.procs.start(program)
    return proc.wait_exit(), proc.stderr()


def test_a_scheduler_waits_for_a_cluster_that_is_not_up_yet(
        env: dict[str, str], tmp_path: Path, deploy: list[Deployment]) -> None:
    # redis-py connects while it builds a cluster client: a pod that starts before Redis
    # must wait with back-off, not crash, and still stop cleanly.
    d = deployment(deploy, env, tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0",
                   redis_cluster="true", key_prefix="{early}")
    scheduler = d.procs.scheduler()
    eventually(lambda: "retrying with back-off" in scheduler.stderr(), what="waiting logged")
    assert scheduler.alive()
    scheduler.signal(signal.SIGTERM)
    assert scheduler.wait_exit() == 0
