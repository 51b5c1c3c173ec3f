"""``queuectl enqueue --file``: many jobs from JSON lines, all checked before any is stored.

Two passes. The first reads the input line by line (never more than one chunk of
jobs in memory, and a line longer than any job can be is refused by its length before
it is parsed), validates every line and writes the jobs, as validated and in the form
their records store them (``enqueueing.Row``, generated ids included), to a temporary
file, one line a chunk. Only when every line is valid does the second pass read that
file back and store the jobs, one script call per chunk; a thread reads and builds
the next chunk while Redis runs one. The temporary file makes stdin, pipes and
``<(...)`` work, makes what is stored exactly what was validated even if the input
changes meanwhile, and spares the second pass a second validation.

A job whose id already exists is skipped and counted, so running the same file again
after a failure stores each missing job once. A chunk is stored whole or not at all;
when Redis refuses one (maxmemory, a key of the wrong type, a lost connection) nothing
more is sent, and the summary says how many jobs were stored and which line stopped it.
"""

from __future__ import annotations

import gc
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import IO, Any

import redis
import typer

from queuectl.cli import render
from queuectl.cli.context import get_client, get_state
from queuectl.core import strictjson
from queuectl.core.client import Client
from queuectl.core.enqueueing import BulkEnqueueError, PreparedChunk, Row, chunk_full, row_size
from queuectl.core.errors import InvalidInputError, QueueCtlError
from queuectl.core.jobrows import row_from_mapping
from queuectl.core.models import JobState
from queuectl.core.prefetch import Ahead
from queuectl.core.resilience import redis_error_message
from queuectl.core.store import EnqueueResult
from queuectl.core.strictjson import MAX_JOB_JSON_BYTES

# A line may hold the longest valid job, every character \u-escaped (core/strictjson.py).
MAX_LINE_BYTES = MAX_JOB_JSON_BYTES
PROGRESS_MIN = 5000
# Allocations between two runs of the collector's youngest generation during the second
# pass (see _fewer_collections).
GC_THRESHOLD = 20_000
SKIPPED_SHOWN = 20


class IdSink:
    """Where the id of each job stored goes as soon as it is stored: stdout one a line
    (``--quiet``), or the summary's ``"ids"`` array written as it grows (``--json``), so
    that any number of ids fits in bounded memory; nowhere otherwise."""

    def __init__(self, *, as_json: bool, quiet: bool) -> None:
        self.as_json = as_json
        self.quiet = quiet
        self.count = 0

    def add(self, job_id: str) -> None:
        if self.as_json:
            sys.stdout.write(('{\n  "ids": [\n    ' if self.count == 0 else ",\n    ")
                             + json.dumps(job_id))
        elif self.quiet:
            sys.stdout.write(job_id + "\n")
        self.count += 1

    def close_json(self, rest: dict[str, Any]) -> None:
        """End the ``--json`` document: the ids array, then the ``rest`` of the summary."""
        head = "\n  ]" if self.count else '{\n  "ids": []'
        sys.stdout.write(head + "," + json.dumps(rest, indent=2)[1:] + "\n")


@dataclass
class Tally:
    """What the second pass did, for the summary."""

    total: int
    keep_skipped: bool = False  # every skipped job (for --json), else the first few
    pending: int = 0
    scheduled: int = 0
    skipped: int = 0
    shown: list[EnqueueResult] = field(default_factory=list)
    sent: int = 0
    ids: IdSink | None = None

    @property
    def enqueued(self) -> int:
        return self.pending + self.scheduled

    def add(self, results: list[EnqueueResult]) -> None:
        for result in results:
            if result.state is not None and self.ids is not None:
                self.ids.add(result.id)
            if result.state is JobState.PENDING:
                self.pending += 1
            elif result.state is JobState.SCHEDULED:
                self.scheduled += 1
            else:
                self.skipped += 1
                if self.keep_skipped or len(self.shown) < SKIPPED_SHOWN:
                    self.shown.append(result)


class StoppedError(QueueCtlError):
    """The second pass stopped part-way; the message says where and what was stored."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def read_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of each line, refusing one longer than MAX_LINE_BYTES unread."""
    number = 0
    while raw := stream.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise InvalidInputError(
                f"line {number}: longer than {MAX_LINE_BYTES} bytes, more than any job needs "
                f"(the command is at most 128 KiB)")
        yield number, raw


def parse_line(number: int, raw: bytes) -> tuple[Row, bool]:
    """One job line in its stored form, and whether it gives an id; errors prefixed with
    its number."""
    try:
        data = strictjson.loads(raw.decode("utf-8"))
        return row_from_mapping(data), "id" in data
    except UnicodeDecodeError:
        raise InvalidInputError(f"line {number}: not valid UTF-8") from None
    except QueueCtlError as exc:
        raise InvalidInputError(f"line {number}: {exc}") from None


def check(source: IO[bytes], spool: IO[bytes]) -> int:
    """First pass: validate every line and write the jobs to ``spool`` in their stored form,
    cut in chunks as the store sends them (``chunk_full``): one JSON line a chunk, its line
    numbers and its rows. Returns the number of jobs."""
    first_line: dict[str, int] = {}
    jobs = 0
    numbers: list[int] = []
    rows: list[Row] = []
    size = 0
    for number, raw in read_lines(source):
        if not raw.strip():
            continue
        row, given = parse_line(number, raw)
        if given:
            if row[0] in first_line:
                raise InvalidInputError(
                    f"line {number}: id {row[0]} repeats line {first_line[row[0]]}")
            first_line[row[0]] = number
        numbers.append(number)
        rows.append(row)
        size += row_size(row)
        if chunk_full(len(rows), size):
            _spool_chunk(spool, numbers, rows)
            jobs += len(rows)
            numbers, rows, size = [], [], 0
    if rows:
        _spool_chunk(spool, numbers, rows)
        jobs += len(rows)
    spool.flush()
    spool.seek(0)
    return jobs


def _spool_chunk(spool: IO[bytes], numbers: list[int], rows: list[Row]) -> None:
    spool.write(json.dumps([numbers, rows], ensure_ascii=False).encode("utf-8") + b"\n")


def _chunks(spool: IO[bytes]) -> Iterator[tuple[list[Row], list[int]]]:
    """Second pass: the validated jobs again, a chunk at a time, with their line numbers."""
    for raw in spool:
        try:
            numbers, rows = json.loads(raw)
            chunk: list[Row] = [tuple(row) for row in rows]
        except ValueError:
            # Only a temporary file changed by someone else gets here.
            raise InvalidInputError("the temporary copy of the input changed") from None
        yield chunk, numbers


def _prepared(client: Client, spool: IO[bytes], replace: bool
              ) -> Iterator[tuple[PreparedChunk, list[int]]]:
    for rows, lines in _chunks(spool):
        yield client.store.prepare_chunk(rows, replace), lines


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Python's cyclic collector less often while chunks are sent: each chunk makes
    thousands of short-lived, acyclic objects, and the collector's default pace (every
    700 allocations) cost about 6 % of the second pass."""
    thresholds = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def store(client: Client, spool: IO[bytes], tally: Tally, *, replace: bool,
          where: str) -> None:
    """Enqueue the spooled jobs; StoppedError (with the summary so far) if Redis refuses one.

    While Redis runs one chunk, a thread reads and builds the next (at most one ahead;
    nothing is sent but by this thread, in order, and never after a chunk that stopped).
    A replace reads the old queues while preparing and tracing starts a span a job, so
    both keep to one thread, as before.
    """
    show = tally.total >= PROGRESS_MIN and sys.stderr.isatty()
    chunks = _prepared(client, spool, replace)
    ahead = not replace and not client.store.tracing.check()
    try:
        with _fewer_collections(), Ahead(chunks) if ahead else nullcontext(chunks) as prepared:
            for chunk, lines in prepared:
                results: list[EnqueueResult] = []
                try:
                    client.store.send_chunk(chunk, results)
                except BulkEnqueueError as exc:
                    tally.add(exc.results)
                    tally.sent += exc.sent
                    raise StoppedError(_stop_message(exc, lines[exc.index], tally, where),
                                       exc.exit_code) from None
                tally.add(results)
                tally.sent += len(lines)
                if show:
                    sys.stderr.write(f"\renqueued {tally.sent}/{tally.total}")
                    sys.stderr.flush()
    except InvalidInputError as exc:
        # Say what was stored all the same.
        raise StoppedError(f"stopped: {exc}; {tally.enqueued} of {tally.total} jobs enqueued",
                           exc.exit_code) from None
    finally:
        if show:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _stop_message(exc: BulkEnqueueError, line: int, tally: Tally, where: str) -> str:
    """One line: the line that stopped it, why, and exactly what was and was not stored."""
    cause = exc.cause
    if isinstance(cause, redis.OutOfMemoryError):
        why = "Redis refused the job: out of memory (used memory > maxmemory)"
    elif isinstance(cause, redis.RedisError):
        why = redis_error_message(cause, where)
    else:
        why = str(cause)
    parts = [f"stopped at line {line}: {why}",
             f"{tally.enqueued} of {tally.total} jobs enqueued, {tally.skipped} skipped"]
    if exc.unsure:
        parts.append(f"the replies for {exc.unsure} jobs from line {line} on were lost: "
                     "they may or may not be stored")
    parts.append(f"{tally.total - tally.sent} not sent; running the same file again skips "
                 "the jobs already stored (a line without an id is enqueued again)")
    return "; ".join(parts)


def summary(tally: Tally, *, as_json: bool, quiet: bool, stopped: StoppedError | None) -> None:
    """Print what was stored and skipped (even when stopped part-way)."""
    if as_json:
        assert tally.ids is not None
        tally.ids.close_json({
            "enqueued": tally.enqueued, "pending": tally.pending, "scheduled": tally.scheduled,
            "skipped": [{"id": r.id, "reason": r.error} for r in tally.shown],
            "total": tally.total, "error": str(stopped) if stopped else None,
        })
        return
    if quiet:
        return
    line = f"enqueued {tally.enqueued} job{'s' if tally.enqueued != 1 else ''}"
    if tally.skipped:
        line += f", skipped {tally.skipped} existing"
    print(line)
    for result in tally.shown[:SKIPPED_SHOWN]:
        print(f"skipped: {render.clean(result.error)}")
    if tally.skipped > SKIPPED_SHOWN:
        print(f"skipped: ... and {tally.skipped - SKIPPED_SHOWN} more")


def enqueue_file(ctx: typer.Context, source: str, *, replace: bool, as_json: bool,
                 quiet: bool) -> None:
    """``enqueue --file SOURCE``: check every line, then store the jobs and summarise."""
    with ExitStack() as stack:
        try:
            spool: Any = stack.enter_context(tempfile.TemporaryFile(prefix="queuectl-"))
            stream: IO[bytes] = (sys.stdin.buffer if source == "-"
                                 else stack.enter_context(open(source, "rb")))
            tally = Tally(check(stream, spool), keep_skipped=as_json,  # before Redis is touched
                          ids=IdSink(as_json=as_json, quiet=quiet))
        except OSError as exc:
            what = "stdin" if source == "-" else source
            raise InvalidInputError(f"cannot read {what} (into a temporary file): "
                                    f"{exc.strerror or exc}") from None
        client = get_client(ctx, start=True)
        stopped: StoppedError | None = None
        try:
            store(client, spool, tally, replace=replace,
                  where=get_state(ctx).redis_description())
        except StoppedError as exc:
            stopped = exc
        summary(tally, as_json=as_json, quiet=quiet, stopped=stopped)
        if stopped is not None:
            raise stopped
