"""Running QueueCTL's Lua scripts: loading, the return codes they share, and job keys.

Scripts check every key and field they read before their first write, and answer
a return code instead of raising (see scripts/lib/guard.lua): -90 (a key of the
wrong type), -91 (NOPERM) and -92 (the job went to quarantine) mean the same in
every script and are turned into exceptions or notes in one place, ``_run``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from queuectl.core.errors import (
    CannotWorkError,
    DataError,
    PermissionDeniedError,
    ReplicationError,
)
from queuectl.core.keys import DEFAULT_QUEUE, Keys
from queuectl.core.lua import script_names, script_source
from queuectl.core.models import JobState, valid_name
from queuectl.core.policy import Policy, PolicyCache
from queuectl.core.resilience import Failure, classify
from queuectl.core.topology import node_of

log = logging.getLogger("queuectl.store")

PIPELINE_CHUNK = 1000
DATA_ERROR = -90
NO_PERM = -91
QUARANTINED = -92
# A note that repeats (a queue key of the wrong type is met on every fetch) is logged
# at most once per this many seconds.
NOTE_INTERVAL = 60.0


def as_str(value: Any) -> str:
    """Decode a reply losslessly: bytes that are not UTF-8 survive as surrogate escapes."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def decoded(raw: Any) -> dict[str, str]:
    """An HGETALL reply as text (see as_str)."""
    return {as_str(k): as_str(v) for k, v in raw.items()}


def is_wrongtype(exc: BaseException) -> bool:
    """True for the error a command meets on a key of another type."""
    return isinstance(exc, redis.ResponseError) and str(exc).startswith("WRONGTYPE")


def num(value: float | None) -> str:
    """A number as the scripts expect it: plain decimal, "" for none."""
    if value is None:
        return ""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


@dataclass(frozen=True, slots=True)
class Fetched:
    """A job a worker now holds, with the lease token every later write must present."""

    id: str
    lease: int
    command: str
    timeout: float | None
    attempts: int
    queue: str
    trace_context: str
    env: str = ""
    # Server times: since when the job was ready to run (None if unknown) and of the fetch.
    ready_at: float | None = None
    fetched_at: float = 0.0
    # time.monotonic() when the fetch reply arrived: with fetched_at, it dates the spawn
    # on Redis's clock (spawned_at) without asking Redis again. Local to this process: not
    # part of what makes two leases the same.
    received: float = field(default=0.0, compare=False)

    def server_time(self, monotonic: float) -> float | None:
        """A moment of this process's monotonic clock on Redis's clock (None if unknown)."""
        if not self.fetched_at or not self.received:
            return None
        return self.fetched_at + max(0.0, monotonic - self.received)

    @property
    def wait(self) -> float | None:
        """Seconds from ready to fetched, by Redis's clock (no skew between hosts)."""
        if self.ready_at is None or not self.fetched_at:
            return None
        return max(0.0, self.fetched_at - self.ready_at)


@dataclass(frozen=True, slots=True)
class Replicas:
    """How many replicas must confirm a write that must survive a failover (WAIT), and how
    long to wait for them; ``count`` 0 sends no WAIT."""

    count: int = 0
    timeout: float = 1.0

    def short(self, acked: Any, what: str) -> ReplicationError | None:
        """The error for a WAIT answered by fewer than ``count`` replicas, else None."""
        if int(acked) >= self.count:
            return None
        return ReplicationError(
            f"{what} stored on the master, but only {int(acked)} of "
            f"{self.count} replicas confirmed it within {self.timeout:g}s "
            "(QUEUECTL_REDIS_MIN_REPLICAS_ACK): a failover now could lose it")


class Quarantined(Exception):  # noqa: N818 - an outcome, not a failure of the caller
    """A finish or release moved the job to quarantine instead (its record or a key it
    must move to cannot be used); the worker logs it and moves on."""


@dataclass(frozen=True, slots=True)
class FailOutcome:
    dead: bool
    retry_at: float | None


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    id: str
    state: JobState | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Moved:
    """One job a scheduler script moved: promoted (source retry/delayed, due time) or
    recovered from a dead worker (source requeued/buried, due None)."""

    id: str
    queue: str
    source: str
    due: float | None
    trace_context: str


@dataclass(frozen=True, slots=True)
class ReapResult:
    requeued: int
    buried: int
    notes: list[str] = field(default_factory=list)
    jobs: list[Moved] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PromoteResult:
    moved: int
    next_due: float | None
    now: float
    jobs: list[Moved] = field(default_factory=list)  # each job, when asked for details
    counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (queue, source) -> n
    dues: list[float] = field(default_factory=list)  # each moved job's due time


class NoteLog:
    """Logs what scripts set aside, each distinct note at most once per NOTE_INTERVAL."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self.logger = logger
        self._last: dict[str, float] = {}

    def __call__(self, notes: Iterable[Any]) -> list[str]:
        out = [as_str(n) for n in notes]
        now = time.monotonic()
        for note in out:
            if now - self._last.get(note, -NOTE_INTERVAL) >= NOTE_INTERVAL:
                self._last[note] = now
                self.logger.warning("%s", note)
        if len(self._last) > 10000:
            self._last.clear()
        return out


def check_reply(reply: Any) -> Any:
    """Raise for the codes every script shares (wrong type, NOPERM); return the rest."""
    if isinstance(reply, list) and reply and isinstance(reply[0], int):
        if reply[0] == DATA_ERROR:
            raise DataError(as_str(reply[1]))
        if reply[0] == NO_PERM:
            raise PermissionDeniedError(
                f"Redis refused a command QueueCTL needs ({as_str(reply[1])}); grant the ACL "
                "that `queuectl acl SERVICE` prints (README: Least-privilege ACLs)")
    return reply


class ScriptStore:
    """The scripts over one redis client (``decode_responses=False``) and the runtime policy."""

    def __init__(self, client: redis.Redis, keys: Keys, policy: Policy,
                 log_cap: int = 65536, *, policy_max_age: float = 0.0,
                 replicas: Replicas | None = None) -> None:
        self.redis = client
        self.replicas = replicas or Replicas()
        self.keys = keys
        self.log_cap = log_cap
        self.policies = PolicyCache(self._read_config, policy, policy_max_age)
        self.notes = NoteLog()
        # Filled on first use: a CLI command runs one script or none, and reading and
        # expanding all of them cost it ~10 ms (load_scripts still loads every one). Two
        # threads may register one script at once: the same text twice, no harm.
        self._scripts: dict[str, Any] = {}

    @property
    def policy(self) -> Policy:
        """The runtime policy in effect (P:config over the environment's defaults)."""
        return self.policies.current()

    def _read_config(self) -> dict[str, str] | str:
        try:
            raw: Any = self.redis.hgetall(self.keys.config)
        except redis.ResponseError as exc:
            if str(exc).startswith("WRONGTYPE"):
                return f"key {self.keys.config} is not a hash"
            raise
        return {as_str(a): as_str(b) for a, b in raw.items()}

    def _script(self, name: str) -> Any:
        """The registered script ``scripts/<name>.lua`` (redis-py's Script)."""
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.redis.register_script(script_source(name))
        return script

    def load_scripts(self) -> None:
        """Load every script now (SCRIPT LOAD), so the first job does not pay for it and a
        service is ready only once they are in (redis-py reloads them after a restart)."""
        # On a cluster, the server that holds the prefix's slot: it runs every script.
        pipe = node_of(self.redis, self.keys.config).pipeline(transaction=False)
        for name in script_names():
            pipe.script_load(self._script(name).script)
        try:
            pipe.execute()
        except redis.ResponseError as exc:
            if classify(exc) is not Failure.OTHER:
                raise  # an outage is waited out, refused credentials stop the service
            # Not a passing state (SCRIPT renamed away, scripting off): without its scripts a
            # service cannot work. redis-py's text quotes the script; keep Redis's words.
            why = str(exc).rpartition("caused error: ")[2].partition(", with args")[0]
            raise CannotWorkError(f"Redis cannot load QueueCTL's Lua scripts: {why}") from None

    def _run(self, name: str, keys: Sequence[str], args: Sequence[Any],
             client: Any = None) -> Any:
        reply = self._script(name)(keys=list(keys), args=list(args), client=client)
        return reply if client is not None else check_reply(reply)

    def server_pipeline(self) -> Any:
        """A pipeline on one connection of the server that holds the prefix's keys. It may
        carry commands without keys, which a cluster pipeline refuses (TIME) or sends to
        another connection (WAIT): a WAIT at its end confirms every write before it (WAIT
        counts what its own connection wrote), a TIME in it is the scripts' clock."""
        return node_of(self.redis, self.keys.config).pipeline(transaction=False)

    def confirm(self, pipe: Any) -> bool:
        """End ``pipe`` with a WAIT when writes must reach replicas (True); its last reply
        is then the number of replicas that confirmed them (see Replicas.short)."""
        if not self.replicas.count:
            return False
        pipe.wait(self.replicas.count, max(1, round(self.replicas.timeout * 1000)))
        return True

    def _run_confirmed(self, name: str, keys: Sequence[str], args: Sequence[Any],
                       what: str, *, strict: bool = True) -> Any:
        """Run a script whose write must survive a failover: with replicas to wait for,
        the script and a WAIT go on one connection. Too few confirmations raise
        ReplicationError (``strict``; the write itself is done) or are logged."""
        if not self.replicas.count:
            return self._run(name, keys, args)
        pipe = self.server_pipeline()
        self._run(name, keys, args, pipe)
        self.confirm(pipe)
        reply, acked = pipe.execute()
        reply = check_reply(reply)
        short = self.replicas.short(acked, what)
        if short is not None:
            if strict:
                raise short
            log.warning("%s", short)
        return reply

    def queue_of(self, job_id: str) -> str:
        """The queue named by a job's record, or the default one when it names none usable."""
        try:
            raw = self.redis.hget(self.keys.job(job_id), "queue")
        except redis.ResponseError:
            return DEFAULT_QUEUE  # a record of the wrong type: the script quarantines it
        name = as_str(raw) if raw else DEFAULT_QUEUE
        return name if valid_name(name) else DEFAULT_QUEUE

    def job_queue_keys(self, ids: Sequence[str],
                       indexes: Sequence[str] = ()) -> tuple[list[str], list[str]]:
        """Keys (job hash, queue list, wake list, then the queue's index of each state in
        ``indexes``) and args (id, queue) of each id, for the scripts that move jobs onto
        queues they cannot know in advance; every script re-checks the queue against
        the record and skips an id that changed."""
        if not ids:
            return [], []
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(k.job(job_id), "queue")
        keys: list[str] = []
        args: list[str] = []
        # A record of the wrong type answers WRONGTYPE here; its script quarantines it.
        for job_id, queue in zip(ids, pipe.execute(raise_on_error=False), strict=True):
            name = as_str(queue) if isinstance(queue, bytes) else DEFAULT_QUEUE
            q = name if valid_name(name) else DEFAULT_QUEUE
            keys += [k.job(job_id), k.queue(q), k.wake(q), *(k.index(q, s) for s in indexes)]
            args += [job_id, name]
        return keys, args

    def run_script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run one script by name (the admin and recovery modules build their calls)."""
        return self._run(name, keys, args)
