"""``queuectl doctor``: check the invariant the whole design rests on, and repair it.

Every job record is in exactly one place that matches its state (its queue, the
in-flight set of the registered worker that runs it, the retry or delayed set,
the DLQ, the completed or cancelled index, quarantine); every id in those places
has a record. The scan reads everything without a lock, in batches, on a live
system; each job that looks wrong is then checked again atomically by
``repair.lua``, which repairs it on request, so a job that merely moved during
the scan is never reported.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import redis

from queuectl.core.errors import ConflictError
from queuectl.core.keys import DEFAULT_QUEUE, KEY_TYPES, MARKERS
from queuectl.core.models import JobState, record_problem, valid_name
from queuectl.core.store import Store, as_str

BATCH = 1000
# Where each stored state belongs; processing and pending depend on the record.
STATE_PLACE = {"scheduled": "delayed", "failed": "retry", "dead": "dead",
               "completed": "completed", "cancelled": "cancelled"}


@dataclass(slots=True)
class Record:
    state: str
    queue: str
    worker: str
    problem: str | None


@dataclass(slots=True)
class Report:
    """What doctor found: one line per problem, which were repaired, and a few counts."""

    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    jobs: int = 0
    keys: int = 0
    quarantined: int = 0

    @property
    def healthy(self) -> bool:
        """Nothing is left that needs someone: every problem was repaired, none quarantined."""
        return len(self.problems) == len(self.repaired) and self.quarantined == 0


class Doctor:
    """One run over one store; ``fix`` repairs what can be repaired."""

    def __init__(self, store: Store, *, fix: bool,
                 progress: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.keys = store.keys
        self.fix = fix
        self.progress = progress or (lambda _msg: None)
        self.report = Report()
        self.records: dict[str, Record] = {}
        self.places: dict[str, list[str]] = defaultdict(list)  # id -> kinds, with repeats
        self.place_keys: dict[str, str] = {}  # kind -> key
        self.registered: set[str] = set()

    def _problem(self, text: str, repaired: bool = False) -> None:
        self.report.problems.append(text)
        if repaired:
            self.report.repaired.append(text)

    # -- the scan -----------------------------------------------------------------------
    def _scan_keys(self) -> Iterator[list[tuple[str, str]]]:
        """Batches of (key, type) under the prefix."""
        r = self.store.redis
        batch: list[str] = []

        def typed(keys: list[str]) -> list[tuple[str, str]]:
            pipe = r.pipeline(transaction=False)
            for key in keys:
                pipe.type(key)
            return [(key, as_str(t)) for key, t in zip(keys, pipe.execute(), strict=True)]

        for raw in r.scan_iter(match=f"{_glob_escape(self.keys.prefix)}:*", count=BATCH):
            batch.append(as_str(raw))
            if len(batch) >= BATCH:
                yield typed(batch)
                batch = []
        if batch:
            yield typed(batch)

    def scan(self) -> None:
        jobs: list[str] = []
        members: list[tuple[str, str, str]] = []  # (kind, key, type) of places
        for batch in self._scan_keys():
            for key, kind_type in batch:
                self.report.keys += 1
                family_name = self.keys.classify(key)
                if family_name is None:
                    continue
                family, name = family_name
                want = KEY_TYPES[family]
                if kind_type != want:
                    self._wrong_type(key, family, kind_type, want)
                    continue
                if family == "job":
                    jobs.append(name)
                elif family in ("queue", "inflight", "index"):
                    members.append((f"{family}:{name}", key, want))
                elif family in ("retry", "delayed", "dead", "completed", "cancelled",
                                "quarantine"):
                    members.append((family, key, want))
                elif family == "workers":
                    self.registered = {as_str(w) for w in self.store.redis.zrange(key, 0, -1)}
            self._read_records(jobs)
            jobs = []
        self.progress(f"read {len(self.records)} job records")
        for kind, key, want in members:
            self.place_keys[kind] = key
            for job_id in _members(self.store.redis, key, want):
                self.places[job_id].append(kind)
        self.report.jobs = len(self.records)

    def _wrong_type(self, key: str, family: str, found: str, want: str) -> None:
        text = f"key {key} is a {found}, not a {want}"
        if family in MARKERS:
            # Markers only wake sleepers; a wrong one carries nothing worth keeping.
            if self.fix:
                self.store.redis.delete(key)
            self._problem(f"{text} (a wake-up marker; deleting it is safe)", self.fix)
        elif family == "job":
            self._problem(f"{text}: not a job record (inspect it, then DEL it)")
        else:
            self._problem(f"{text}: jobs that need it go to quarantine until it is fixed "
                          "(inspect it, then DEL or RENAME it)")

    def _read_records(self, ids: list[str]) -> None:
        if not ids:
            return
        pipe = self.store.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(self.keys.job(job_id))
        for job_id, raw in zip(ids, pipe.execute(raise_on_error=False), strict=True):
            if not isinstance(raw, dict) or not raw:
                continue  # gone, or no longer a hash, since the scan
            fields = {as_str(a): as_str(b) for a, b in raw.items()}
            self.records[job_id] = Record(fields.get("state", ""), fields.get("queue", ""),
                                          fields.get("worker", ""),
                                          record_problem(fields, job_id))

    # -- judging ------------------------------------------------------------------------
    def _expected(self, rec: Record) -> list[str]:
        """The places a valid record's state calls for (each must hold the id once)."""
        if rec.state == JobState.PENDING.value:
            return [f"queue:{rec.queue}"]
        if rec.state == JobState.PROCESSING.value:
            return [f"inflight:{rec.worker}"]
        if rec.state in STATE_PLACE:
            return [STATE_PLACE[rec.state], f"index:{rec.queue}:{rec.state}"]
        return []

    def _suspect(self, job_id: str) -> bool:
        seen = self.places.get(job_id, [])
        rec = self.records.get(job_id)
        if "quarantine" in seen:
            return len(seen) > 1
        if rec is None:
            return bool(seen)
        if rec.problem is not None:
            return True
        if rec.state == JobState.PROCESSING.value and rec.worker not in self.registered:
            return True
        return sorted(seen) != sorted(self._expected(rec))

    def _candidates(self, job_id: str) -> dict[str, str]:
        """kind -> key of every place to check: where the id was seen, and where it belongs."""
        k = self.keys
        rec = self.records.get(job_id)
        queue = rec.queue if rec and valid_name(rec.queue) else DEFAULT_QUEUE
        kinds = dict.fromkeys(self.places.get(job_id, []))
        kinds[f"queue:{queue}"] = None
        kinds[f"wake:{queue}"] = None
        if rec is not None and rec.problem is None:
            kinds.update(dict.fromkeys(self._expected(rec)))
        out = {}
        for kind in kinds:
            family, _, name = kind.partition(":")
            if kind in self.place_keys:
                out[kind] = self.place_keys[kind]
            elif family == "queue":
                out[kind] = k.queue(name)
            elif family == "wake":
                out[kind] = k.wake(name)
            elif family == "inflight":
                out[kind] = k.inflight(name)
            elif family == "index":
                queue_name, _, state = name.rpartition(":")
                out[kind] = k.index(queue_name, state)
            else:
                out[kind] = {"retry": k.retry_queue, "delayed": k.delayed, "dead": k.dead_letter,
                             "completed": k.completed, "cancelled": k.cancelled,
                             "quarantine": k.quarantine}[kind]
        out.pop("quarantine", None)  # the script reads quarantine itself
        return out

    def _check(self, job_id: str) -> None:
        for _ in range(3):
            try:
                problems, repaired = self.store.repair(job_id, self._candidates(job_id),
                                                       fix=self.fix)
            except ConflictError:
                self._reread(job_id)
                continue
            for text in problems:
                self._problem(f"job {job_id}: {text}", repaired)
            return
        self._problem(f"job {job_id}: kept changing while it was checked; run doctor again")

    def _reread(self, job_id: str) -> None:
        self.records.pop(job_id, None)
        self._read_records([job_id])

    def check(self) -> Report:
        """Scan, judge, re-check suspects atomically (and repair them if asked)."""
        self.scan()
        for name, why in self.store.policies.refresh().invalid.items():
            self._problem(f"config {name}: {why} (queuectl config set {name} VALUE)")
        for job_id in sorted(set(self.records) | set(self.places)):
            if self._suspect(job_id):
                self._check(job_id)
        # A quarantine of the wrong type is already a problem of its own.
        with contextlib.suppress(redis.ResponseError):
            self.report.quarantined = int(self.store.redis.zcard(self.keys.quarantine))
        return self.report


def _members(r: redis.Redis, key: str, kind: str) -> Iterator[str]:
    if kind == "list":
        start = 0
        while part := r.lrange(key, start, start + 10 * BATCH - 1):
            yield from (as_str(m) for m in part)
            start += len(part)
    elif kind == "zset":
        for member, _score in r.zscan_iter(key, count=BATCH):
            yield as_str(member)
    else:
        for member in r.sscan_iter(key, count=BATCH):
            yield as_str(member)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def run(store: Store, *, fix: bool, progress: Callable[[str], None] | None = None) -> Report:
    """Check (and with ``fix`` repair) the store; see the module docstring."""
    return Doctor(store, fix=fix, progress=progress).check()

