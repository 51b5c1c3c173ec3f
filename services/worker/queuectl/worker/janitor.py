"""Log file retention: ``<id>.log`` goes once its job's record has left Redis.

A job's record is deleted by the retention the policy sets (completed-ttl for
completed and cancelled jobs, dead-ttl and dead-max for the DLQ) or by a purge, so a
file whose record is gone is output nobody can look up any more: removing exactly
those gives the files the same retention as the records, whatever the job's state,
and keeps every file ``queuectl logs`` might still be asked about (a job waiting
for its retry, one kept forever with a ttl of 0).

Each pass looks at a bounded slice of the directory (it resumes where the last one
stopped), never touches a file changed in the last MIN_AGE seconds or the file of a
job running on this worker, and asks Redis about the candidates in one pipelined
round trip. An error ends the pass with one line in the log; the thread goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator

from queuectl.core.health import Health
from queuectl.core.models import valid_name
from queuectl.core.store import Store
from queuectl.worker.logdir import LogDir

log = logging.getLogger("queuectl.worker")

# A file this recent may belong to a job that is being enqueued again under its id, or
# whose first output is being written: it is left for a later pass.
MIN_AGE = 60.0
# Directory entries looked at per pass: a pass costs the same with ten files or ten million.
SWEEP_BATCH = 1000
SUFFIX = ".log"
# The health watch's tick while waiting: well inside the worker's STUCK_AFTER.
TICK = 5.0


class LogJanitor(threading.Thread):
    """Removes the log files of jobs whose record is gone, a slice every ``interval`` s."""

    def __init__(self, store: Store, logs: LogDir, running: Callable[[], set[str]],
                 done: threading.Event, health: Health, interval: float, *,
                 min_age: float = MIN_AGE, batch: int = SWEEP_BATCH) -> None:
        super().__init__(name="log-janitor", daemon=True)
        self.store = store
        self.logs = logs
        self.running = running
        self.done = done
        self.health = health
        self.interval = interval
        self.min_age = min_age
        self.batch = batch
        self.removed = 0
        self._names: Generator[str, None, None] | None = None

    def run(self) -> None:
        with self.health.watching():
            while self._wait():
                try:
                    self.sweep()
                except Exception as exc:
                    # Retention is upkeep: a full disk, a vanished directory or Redis being
                    # away must not stop the jobs. The next pass tries again.
                    self._restart()
                    log.warning("log retention pass failed: %s: %s; next pass in %gs",
                                type(exc).__name__, exc, self.interval)

    def _wait(self) -> bool:
        """Wait out one interval, ticking the health watch; False once the worker stops."""
        deadline = time.monotonic() + self.interval
        while (left := deadline - time.monotonic()) > 0:
            self.health.tick()
            if self.done.wait(min(left, TICK)):
                return False
        self.health.tick()
        return not self.done.is_set()

    def sweep(self) -> int:
        """One pass over the next slice of LOG_DIR; returns how many files were removed."""
        cutoff = time.time() - self.min_age
        candidates = [name for name in self._slice()
                      if self._old_log(name, cutoff)]
        if not candidates:
            return 0
        k = self.store.keys
        pipe = self.store.redis.pipeline(transaction=False)
        for name in candidates:
            pipe.exists(k.job(name[:-len(SUFFIX)]))
        gone = [name for name, n in zip(candidates, pipe.execute(), strict=True) if not n]
        busy = self.running()
        removed = 0
        for name in gone:
            if name[:-len(SUFFIX)] in busy:
                continue
            if self.logs.remove(name):
                removed += 1
        if removed:
            log.info("removed %d log file(s) of jobs no longer kept in Redis", removed)
        self.removed += removed
        return removed

    def close(self) -> None:
        """Release the directory scan in progress (the thread has stopped)."""
        self._restart()

    def _restart(self) -> None:
        if self._names is not None:
            self._names.close()
            self._names = None

    def _slice(self) -> list[str]:
        """The next ``batch`` names of the directory; a new scan starts when one ends."""
        if self._names is None:
            self._names = self.logs.scan()
        names: list[str] = []
        for name in self._names:
            names.append(name)
            if len(names) >= self.batch:
                return names
        self._restart()  # this scan is done: the next pass starts from the top
        return names

    def _old_log(self, name: str, cutoff: float) -> bool:
        if not name.endswith(SUFFIX) or not valid_name(name[:-len(SUFFIX)]):
            return False
        st = self.logs.stat(name)
        return st is not None and st.st_mtime < cutoff
