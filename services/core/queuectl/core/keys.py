"""Every Redis key QueueCTL uses, built here and nowhere else.

The seed's keys keep their names and types for the default queue:
``P:jobs`` (list), ``P:jobs:<id>`` (hash), ``P:config`` (hash),
``P:retry_queue`` (zset), ``P:dead_letter`` (list), ``P:worker:<id>`` (hash).
Everything added lives under a namespace other than ``P:jobs:`` so that no
key can ever collide with a job record. A prefix such as ``{queuectl}`` puts
every key into one Redis Cluster hash slot.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_QUEUE = "default"

# What each key family is, and the Redis type it must have; doctor checks every key
# under the prefix against this. Markers hold no data, so a wrong one can be deleted.
KEY_TYPES: dict[str, str] = {
    "job": "hash", "queue": "list", "wake": "list", "config": "hash", "retry": "zset",
    "dead": "list", "worker": "hash", "workers": "zset", "inflight": "set", "control": "list",
    "wakeup": "list", "queues": "set", "delayed": "zset", "completed": "zset",
    "cancelled": "zset", "scheduler_wake": "list", "scheduler": "hash", "schedulers": "zset",
    "log": "string", "stats": "hash", "quarantine": "zset", "quarantine_why": "hash",
    "index": "zset",
}
# The states a per-queue index exists for (P:idx:<queue>:<state>), each scored by time.
INDEXED_STATES = ("scheduled", "failed", "dead", "completed", "cancelled")
MARKERS = frozenset({"wake", "wakeup", "control", "scheduler_wake"})


def hash_tag(prefix: str) -> str | None:
    """The Redis Cluster hash tag a key prefix carries (``x`` of ``{x}``), or None.

    Cluster hashes only the part between the first ``{`` and the first ``}`` after
    it, when that part is not empty. Every key starts with the prefix, so a tag that
    closes inside the prefix puts every key of that prefix into one slot: the
    scripts, which touch many keys, then never meet CROSSSLOT.
    """
    start = prefix.find("{")
    end = prefix.find("}", start + 1) if start >= 0 else -1
    if end <= start + 1:
        return None
    return prefix[start + 1:end]


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builder for one prefix."""

    prefix: str = "queuectl"

    # -- the seed's keys -------------------------------------------------
    def job(self, job_id: str) -> str:
        return f"{self.prefix}:jobs:{job_id}"

    @property
    def job_prefix(self) -> str:
        """Prefix of job hashes; passed to scripts that meet ids they cannot know in advance."""
        return f"{self.prefix}:jobs:"

    @property
    def config(self) -> str:
        return f"{self.prefix}:config"

    @property
    def retry_queue(self) -> str:
        return f"{self.prefix}:retry_queue"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}:dead_letter"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}:worker:{worker_id}"

    # -- queues ------------------------------------------------------------
    def queue(self, name: str) -> str:
        """Pending list of a queue: the seed's ``P:jobs`` for ``default``."""
        if name == DEFAULT_QUEUE:
            return f"{self.prefix}:jobs"
        return f"{self.prefix}:queue:{name}"

    @property
    def queue_prefix(self) -> str:
        """Prefix of the named queues' lists; promote.lua builds ``prefix .. name``."""
        return f"{self.prefix}:queue:"

    @property
    def wake_prefix(self) -> str:
        """Prefix of the wake lists; promote.lua builds ``prefix .. name``."""
        return f"{self.prefix}:wake:"

    def wake(self, name: str) -> str:
        """Wake-up marker list idle workers block on; armed whenever the queue gains a job."""
        return f"{self.prefix}:wake:{name}"

    @property
    def queues(self) -> str:
        """Set of every queue name ever enqueued to."""
        return f"{self.prefix}:queues"

    # -- time-ordered sets ---------------------------------------------------
    @property
    def delayed(self) -> str:
        """Jobs enqueued with ``--delay``/``--run-at``, scored by due time."""
        return f"{self.prefix}:delayed"

    @property
    def completed(self) -> str:
        """Completed jobs scored by finish time, trimmed to the retention."""
        return f"{self.prefix}:completed"

    @property
    def cancelled(self) -> str:
        return f"{self.prefix}:cancelled"

    @property
    def scheduler_wake(self) -> str:
        """Marker list a sleeping scheduler blocks on; armed when an earlier due time appears."""
        return f"{self.prefix}:scheduler_wake"

    @property
    def gauges_lease(self) -> str:
        """The scheduler replica that exports the cluster gauges (gauges_lease.lua)."""
        return f"{self.prefix}:gauges_lease"

    def scheduler(self, scheduler_id: str) -> str:
        """Status hash of one scheduler replica (expires when its beats stop)."""
        return f"{self.prefix}:scheduler:{scheduler_id}"

    @property
    def schedulers(self) -> str:
        """Zset of scheduler ids scored by their last beat."""
        return f"{self.prefix}:schedulers"

    # -- workers -------------------------------------------------------------
    @property
    def workers(self) -> str:
        """Zset of every registered worker id scored by its last heartbeat."""
        return f"{self.prefix}:workers"

    def inflight(self, worker_id: str) -> str:
        """Set of job ids a worker holds; a crash leaves them here for recovery."""
        return f"{self.prefix}:inflight:{worker_id}"

    def control(self, worker_id: str) -> str:
        """Command list a worker's heartbeat thread blocks on (``stop``)."""
        return f"{self.prefix}:control:{worker_id}"

    def wakeup(self, worker_id: str) -> str:
        """Per-worker list used to wake that worker's idle threads at shutdown."""
        return f"{self.prefix}:wakeup:{worker_id}"

    # -- per-queue indexes -----------------------------------------------------------------
    def index(self, queue: str, state: str) -> str:
        """Zset of one queue's jobs in one state, by time (due time, or finish time).

        The scripts keep it next to the global place of that state (retry_queue,
        delayed, dead_letter, completed, cancelled), so that listing or counting one
        queue's jobs costs what it prints, not what the whole system holds.
        """
        return f"{self.prefix}:idx:{queue}:{state}"

    @property
    def index_prefix(self) -> str:
        """Prefix of the per-queue indexes; prune.lua builds ``prefix .. queue .. ':' .. state``."""
        return f"{self.prefix}:idx:"

    @property
    def log_prefix(self) -> str:
        """Prefix of the output tails; prune.lua builds ``prefix .. id``."""
        return f"{self.prefix}:log:"

    # -- quarantine --------------------------------------------------------------------
    @property
    def quarantine(self) -> str:
        """Zset of ids set aside because their record (or a key they must move to) is unusable."""
        return f"{self.prefix}:quarantine"

    @property
    def quarantine_why(self) -> str:
        """Hash of quarantined id -> JSON reason (what was wrong, which script, when)."""
        return f"{self.prefix}:quarantine:why"

    # -- job output and counters ------------------------------------------------
    def log(self, job_id: str) -> str:
        """Capped tail of a job's output."""
        return f"{self.prefix}:log:{job_id}"

    def classify(self, key: str) -> tuple[str, str] | None:
        """(family, name) of a key this prefix owns, e.g. ("queue", "reports"), else None."""
        head = f"{self.prefix}:"
        if not key.startswith(head):
            return None
        rest = key[len(head):]
        fixed = {"jobs": ("queue", DEFAULT_QUEUE), "config": ("config", ""),
                 "retry_queue": ("retry", ""), "dead_letter": ("dead", ""),
                 "workers": ("workers", ""), "queues": ("queues", ""), "delayed": ("delayed", ""),
                 "completed": ("completed", ""), "cancelled": ("cancelled", ""),
                 "scheduler_wake": ("scheduler_wake", ""), "schedulers": ("schedulers", ""),
                 "stats": ("stats", ""), "quarantine": ("quarantine", ""),
                 "quarantine:why": ("quarantine_why", "")}
        if rest in fixed:
            return fixed[rest]
        family, sep, name = rest.partition(":")
        families = {"jobs": "job", "queue": "queue", "wake": "wake", "worker": "worker",
                    "inflight": "inflight", "control": "control", "wakeup": "wakeup",
                    "scheduler": "scheduler", "log": "log", "idx": "index"}
        if sep and family in families and name:
            return families[family], name
        return None

    @property
    def stats(self) -> str:
        """Hash of cumulative counters (``completed:<queue>``, ``failed:<queue>``, ...)."""
        return f"{self.prefix}:stats"
