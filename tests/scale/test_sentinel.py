"""QueueCTL behind Redis Sentinel: a failover of the master during a run loses no job, and
QUEUECTL_REDIS_MIN_REPLICAS_ACK refuses to call an enqueue done that no replica holds."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import redis

from queuectl.core.client import Client
from queuectl.core.errors import ConflictError, QueueCtlError
from queuectl.core.settings import Settings
from tests.integration.procs import eventually
from tests.redis_server import free_port, wait_ready

from .conftest import Deployment, deployment
from .servers import LocalSentinels, Servers

JOBS = 60


class Producer(threading.Thread):
    """Enqueues s-0 .. s-<JOBS-1> as a careful user does: an error is retried with the same id
    until Redis says the job is stored (a reply) or already there (a conflict)."""

    def __init__(self, client: Client) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.acknowledged: list[str] = []
        self.errors = 0
        self.halfway = threading.Event()

    def run(self) -> None:
        for i in range(JOBS):
            job_id = f"s-{i}"
            # Every fifth job runs long enough to be running when the master dies.
            command = f"sleep 0.3; echo {job_id}" if i % 5 == 0 else f"echo {job_id}"
            while True:
                try:
                    self.client.enqueue(command, job_id=job_id)
                    break
                except ConflictError:
                    break  # an earlier try was stored; its reply was lost
                except (QueueCtlError, redis.RedisError):
                    self.errors += 1
                    time.sleep(0.1)
            self.acknowledged.append(job_id)
            if i == JOBS // 2:
                self.halfway.set()
            time.sleep(0.03)


def test_failover_loses_no_job(sentinels: LocalSentinels, env: dict[str, str],
                               tmp_path: Path, deploy: list[Deployment], tag: str) -> None:
    d = deployment(deploy, env, tmp_path, redis_url=sentinels.url, key_prefix=f"sn{tag}",
                   redis_min_replicas_ack="1", redis_replica_ack_timeout="2",
                   concurrency="4")
    worker = d.procs.worker()
    scheduler = d.procs.scheduler()
    producer = Producer(Client.connect(Settings(
        redis_url=sentinels.url, key_prefix=f"sn{tag}", redis_min_replicas_ack=1,
        redis_replica_ack_timeout=2.0)))
    producer.start()
    assert producer.halfway.wait(30), "the producer did not get half-way"
    old = sentinels.master
    sentinels.kill(old)
    eventually(lambda: sentinels.current_master() != old, what="sentinels promote a replica",
               timeout=30)
    producer.join(60)
    assert not producer.is_alive()
    assert producer.acknowledged == [f"s-{i}" for i in range(JOBS)]

    # Every acknowledged job ends completed on the new master: none was lost.
    waited = d.cli("wait", *producer.acknowledged, "--timeout", "60", timeout=90)
    assert waited.code == 0, (waited.out, waited.err)

    def completed() -> list[dict[str, object]]:
        out = json.loads(d.ok("list", "--json", "--state", "completed", "--limit", "1000"))
        return out if {j["id"] for j in out} == set(producer.acknowledged) else []

    # A duplicate run across the failover may still be finishing: at least once.
    jobs = eventually(completed, what="every acknowledged job listed as completed",
                      timeout=30, interval=0.5, describe=lambda: d.cli("status").out)
    # At least once: a job may have run twice across the failover, never more.
    assert all(j["attempts"] in (1, 2) for j in jobs), [j for j in jobs
                                                         if j["attempts"] not in (1, 2)]
    assert "0 problem(s)" in d.ok("doctor")
    # Both services rode out the failover with their back-off and are still serving.
    assert worker.alive() and scheduler.alive()
    worker.signal(signal.SIGTERM)
    scheduler.signal(signal.SIGTERM)
    assert (worker.wait_exit(), scheduler.wait_exit()) == (0, 0)
    producer.client.redis.close()


def test_enqueue_without_a_replica_ack_fails(tmp_path: Path, env: dict[str, str],
                                             deploy: list[Deployment], tag: str) -> None:
    servers = Servers(tmp_path / "servers")
    master, replica = free_port(), free_port()
    try:
        servers.start(master, "--appendonly", "no")
        servers.start(replica, "--appendonly", "no", "--replicaof", "127.0.0.1", str(master))
        wait_ready(f"redis://127.0.0.1:{replica}/0")
        d = deployment(deploy, env, tmp_path, redis_url=f"redis://127.0.0.1:{master}/0",
                       key_prefix=f"wa{tag}", redis_min_replicas_ack="1",
                       redis_replica_ack_timeout="0.5")
        probe = redis.Redis(port=master, decode_responses=True)
        eventually(lambda: probe.info("replication").get("slave0", {}).get("state") == "online",
                   what="the replica in sync")
        probe.close()
        assert d.ok("enqueue", "--id", "acked", "--", "true").split() == ["acked", "pending"]
        # --file: a WAIT after each chunk of 1000 jobs.
        jobs = tmp_path / "jobs.jsonl"
        jobs.write_text("".join(f'{{"id":"f{i}","command":"true"}}\n' for i in range(1500)))
        assert d.ok("enqueue", "--file", str(jobs)).startswith("enqueued 1500 jobs")
        # A replica that stops answering confirms nothing: the enqueue is not called done.
        servers.procs[replica].send_signal(signal.SIGSTOP)
        result = d.cli("enqueue", "--id", "unconfirmed", "--", "true")
        assert result.code == 6, (result.out, result.err)
        assert result.err.count("\n") == 1
        assert "only 0 of 1 replicas confirmed it within 0.5s" in result.err
        # The first chunk of a file is stored on the master, not confirmed: it stops there.
        jobs.write_text("".join(f'{{"id":"g{i}","command":"true"}}\n' for i in range(1500)))
        result = d.cli("enqueue", "--file", str(jobs))
        assert result.code == 6, (result.out, result.err)
        assert "stopped at line 1: the 1000 jobs sent last were stored on the master, but " \
            "only 0 of 1 replicas confirmed" in result.err
        assert "1000 of 1500 jobs enqueued, 0 skipped; 500 not sent" in result.err
        assert result.out == "enqueued 1000 jobs\n"
        servers.procs[replica].send_signal(signal.SIGCONT)
    finally:
        servers.stop()
