"""Real Redis topologies for the scale-out tests: a three-master Cluster, and a master with
replicas watched by three sentinels, all from the one ``redis-server`` binary."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

from tests.redis_server import free_port, wait_ready


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        # Debian's redis-server package brings redis-cli (redis-tools) with it.
        raise RuntimeError(f"{name} is not installed (apt-get install redis-server)")
    return found


def _wait(predicate: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():  # type: ignore[operator]
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not within {timeout:g}s")
        time.sleep(0.05)


class Servers:
    """redis-server processes this test owns; ``stop`` kills what is left."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        workdir.mkdir(parents=True, exist_ok=True)

    def start(self, port: int, *args: str) -> None:
        where = self.workdir / str(port)
        where.mkdir(exist_ok=True)
        self.procs[port] = subprocess.Popen(
            [_binary("redis-server"), *args, "--port", str(port), "--bind", "127.0.0.1",
             "--dir", str(where), "--save", "", "--logfile", str(where / "redis.log"),
             # A replica (re)syncs at once, not after the default 5 s of waiting for others.
             "--repl-diskless-sync-delay", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self, port: int) -> None:
        """SIGKILL, as a crashed host: nothing is flushed, replicas learn nothing more."""
        proc = self.procs.pop(port)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
        self.procs.clear()


class LocalCluster(Servers):
    """Three masters, no replicas: slots 0-5460, 5461-10922, 10923-16383 in port order."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.ports = [free_port() for _ in range(3)]

    def up(self) -> LocalCluster:
        for port in self.ports:
            # The bus port defaults to port + 10000, which a free high port cannot have.
            self.start(port, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                       "--cluster-port", str(free_port()), "--cluster-node-timeout", "2000",
                       "--appendonly", "no")
        for port in self.ports:
            wait_ready(f"redis://127.0.0.1:{port}/0")
        subprocess.run(
            [_binary("redis-cli"), "--cluster", "create",
             *(f"127.0.0.1:{p}" for p in self.ports), "--cluster-yes"],
            check=True, capture_output=True, timeout=60)
        for port in self.ports:
            node = redis.Redis(port=port, decode_responses=True)
            try:
                _wait(lambda n=node: n.cluster("info")["cluster_state"] == "ok",
                      f"cluster_state:ok on {port}")
            finally:
                node.close()
        return self

    def owner(self, key: str) -> int:
        """The port of the master that holds ``key``'s slot."""
        node = redis.Redis(port=self.ports[0], decode_responses=True)
        try:
            slot = int(node.cluster("keyslot", key))
            for start, end, master, *_ in node.cluster("slots"):
                if start <= slot <= end:
                    return int(master[1])
        finally:
            node.close()
        raise AssertionError(f"no master holds slot of {key}")

    def dbsize(self, port: int) -> int:
        node = redis.Redis(port=port)
        try:
            return int(node.dbsize())
        finally:
            node.close()


class LocalSentinels(Servers):
    """A master, two replicas and three sentinels that fail over within a few seconds."""

    SERVICE = "qmaster"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.master, *self.replicas = [free_port() for _ in range(3)]
        self.sentinels = [free_port() for _ in range(3)]

    def up(self) -> LocalSentinels:
        self.start(self.master, "--appendonly", "no")
        for port in self.replicas:
            self.start(port, "--appendonly", "no", "--replicaof", "127.0.0.1",
                       str(self.master))
        for port in (self.master, *self.replicas):
            wait_ready(f"redis://127.0.0.1:{port}/0")
        for port in self.sentinels:
            conf = self.workdir / f"sentinel-{port}.conf"
            # Sentinel rewrites its config file, so each gets its own.
            conf.write_text(
                f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master} 2\n"
                f"sentinel down-after-milliseconds {self.SERVICE} 1000\n"
                f"sentinel failover-timeout {self.SERVICE} 5000\n"
                f"sentinel parallel-syncs {self.SERVICE} 2\n")
            self.start(port, str(conf), "--sentinel")
        master = redis.Redis(port=self.master, decode_responses=True)
        try:
            _wait(lambda: master.info("replication")["connected_slaves"] == 2,
                  "both replicas connected")
        finally:
            master.close()
        for port in self.sentinels:
            sentinel = redis.Redis(port=port, decode_responses=True)
            try:
                # Each sentinel must know the replicas and the other sentinels, or a
                # failover cannot reach its quorum.
                _wait(lambda s=sentinel: (
                    s.sentinel_master(self.SERVICE)["num-other-sentinels"] == 2
                    and s.sentinel_master(self.SERVICE)["num-slaves"] == 2),
                      f"sentinel {port} sees the others")
            finally:
                sentinel.close()
        return self

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.SERVICE}/0"

    def current_master(self) -> int:
        sentinel = redis.Redis(port=self.sentinels[0], decode_responses=True)
        try:
            address: Any = sentinel.sentinel_get_master_addr_by_name(self.SERVICE)
            return int(address[1])
        finally:
            sentinel.close()
