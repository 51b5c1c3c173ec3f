"""Reading many jobs at once: records, states, waiting, the running totals; mixed into
``Client``. Each costs one round trip per READ_CHUNK ids, never one per job."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from queuectl.core.errors import DataError, NotFoundError, WaitTimeoutError
from queuectl.core.keys import Keys
from queuectl.core.models import Job, JobState, check_job_id
from queuectl.core.overview import TOTALS
from queuectl.core.scripting import as_str, decoded, is_wrongtype

READ_CHUNK = 1000
# The states a wait ends on: the ended ones, and quarantine (a job there will not move on
# by itself).
SETTLED = frozenset({s.value for s in JobState if s.ended} | {JobState.QUARANTINED.value})


@dataclass(frozen=True, slots=True)
class Settled:
    """How a waited-for job ended: its state, and its record when that can be read."""

    id: str
    state: JobState
    job: Job | None


class BulkReads:
    """Reads of many jobs over one Redis client; mixed into ``Client``."""

    redis: redis.Redis
    keys: Keys

    if TYPE_CHECKING:  # Inspection's, in Client
        def scheduler_hint(self) -> str | None: ...
        def worker_hint_for(self, ids: Sequence[str]) -> str | None: ...

    def _records(self, ids: Sequence[str]) -> dict[str, Job | DataError | None]:
        """Each id's record (None if there is none, the DataError if it cannot be read),
        in one pipelined round trip per READ_CHUNK ids."""
        k = self.keys
        out: dict[str, Job | DataError | None] = {}
        for start in range(0, len(ids), READ_CHUNK):
            part = list(ids[start:start + READ_CHUNK])
            pipe = self.redis.pipeline(transaction=False)
            for job_id in part:
                pipe.hgetall(k.job(job_id))
                pipe.strlen(k.log(job_id))
            pipe.zmscore(k.quarantine, part)
            *replies, scores = pipe.execute(raise_on_error=False)
            if isinstance(scores, Exception):
                scores = [None] * len(part)
            for i, job_id in enumerate(part):
                raw, kept = replies[2 * i], replies[2 * i + 1]
                out[job_id] = _job_of(k, job_id, raw, kept, scores[i] is not None)
        return out

    def get_many(self, ids: Sequence[str]) -> dict[str, Job | None]:
        """The record of each id, in the order given (None for an id with no record), in
        one round trip per 1000 ids; CorruptRecordError (a DataError) for a record that
        cannot be read. A job in quarantine has the state ``quarantined``."""
        records = self._records([check_job_id(i) for i in dict.fromkeys(ids)])
        for record in records.values():
            if isinstance(record, DataError):
                raise record
        return {i: r for i, r in records.items() if not isinstance(r, DataError)}

    def counts(self) -> dict[str, dict[str, int]]:
        """The running totals since counting began, per queue, in one round trip:
        ``{queue: {"runs_completed": n, "runs_failed": n, "retries": n, "buried": n,
        "runs_lost": n}}`` (what ``queuectl status`` shows); a queue never counted is
        absent."""
        try:
            raw: Any = self.redis.hgetall(self.keys.stats)
        except redis.ResponseError as exc:
            if is_wrongtype(exc):
                raise DataError(f"key {self.keys.stats} is not a hash (queuectl doctor)") from None
            raise
        totals: dict[str, dict[str, int]] = {}
        for name, value in raw.items():
            kind, _, queue = as_str(name).partition(":")
            if kind in TOTALS and as_str(value).isdigit() and queue:
                totals.setdefault(queue, dict.fromkeys(TOTALS.values(), 0))[TOTALS[kind]] = (
                    int(value))
        return dict(sorted(totals.items()))

    def _states(self, ids: Sequence[str]) -> dict[str, str | None]:
        """The stored state of each id ("quarantined" for one in quarantine, None if no
        record, "" if it cannot be read), in one round trip per READ_CHUNK ids."""
        out: dict[str, str | None] = {}
        for start in range(0, len(ids), READ_CHUNK):
            part = list(ids[start:start + READ_CHUNK])
            pipe = self.redis.pipeline(transaction=False)
            for job_id in part:
                pipe.hget(self.keys.job(job_id), "state")
            pipe.zmscore(self.keys.quarantine, part)
            *states, scores = pipe.execute(raise_on_error=False)
            if isinstance(scores, Exception):
                scores = [None] * len(part)
            for job_id, state, score in zip(part, states, scores, strict=True):
                if score is not None:
                    out[job_id] = JobState.QUARANTINED.value
                elif isinstance(state, bytes):
                    out[job_id] = as_str(state)
                else:
                    out[job_id] = "" if isinstance(state, Exception) else None
        return out

    def wait(self, ids: Sequence[str], timeout: float | None = None,
             poll: float = 0.1) -> dict[str, Settled]:
        """Block until every job has ended (or is in quarantine); WaitTimeoutError past
        ``timeout``. Each poll costs one round trip per 1000 ids still open, and the
        records of the jobs that ended one per 1000 more."""
        ids = [check_job_id(i) for i in dict.fromkeys(ids)]
        deadline = None if timeout is None else time.monotonic() + timeout
        settled: dict[str, Settled] = {}
        open_ids = ids
        first = True
        while True:
            ended: dict[str, str] = {}
            for job_id, state in self._states(open_ids).items():
                if state is None:
                    if first:
                        raise NotFoundError(f"no job {job_id}")
                    raise NotFoundError(f"job {job_id} disappeared (expired or purged)")
                if state in SETTLED:
                    ended[job_id] = state
            for job_id, record in self._records(list(ended)).items():
                job = record if isinstance(record, Job) else None
                settled[job_id] = Settled(job_id, JobState(ended[job_id]), job)
            first = False
            open_ids = [i for i in open_ids if i not in settled]
            if not open_ids:
                return {i: settled[i] for i in ids}
            if deadline is not None and time.monotonic() >= deadline:
                hints = [h for h in (self.scheduler_hint(),
                                     self.worker_hint_for(open_ids[:READ_CHUNK])) if h]
                raise WaitTimeoutError(
                    f"timed out waiting for {len(open_ids)} job(s), e.g. {open_ids[0]}"
                    + "".join(f"; {h}" for h in hints)
                )
            time.sleep(poll)
            poll = min(poll * 1.5, 1.0)


def _job_of(keys: Keys, job_id: str, raw: Any, kept: Any,
            quarantined: bool) -> Job | DataError | None:
    if isinstance(raw, Exception):
        return DataError(f"key {keys.job(job_id)} is not a job hash (queuectl doctor)")
    if not raw:
        return None
    try:
        job = Job.from_hash(decoded(raw), job_id, log_kept=kept if isinstance(kept, int) else 0)
    except DataError as exc:
        return exc
    return job.model_copy(update={"state": JobState.QUARANTINED}) if quarantined else job
