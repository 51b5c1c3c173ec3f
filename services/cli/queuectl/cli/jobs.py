"""Commands about individual jobs: list, show, logs, wait, cancel."""

from __future__ import annotations

import re
import sys
import time
from typing import IO, Annotated

import typer

from queuectl.cli import render
from queuectl.cli.context import get_client
from queuectl.cli.jsonout import job_json, wait_json
from queuectl.core.client import LogTail, parse_state
from queuectl.core.durations import format_duration, parse_duration
from queuectl.core.errors import (
    EXIT_JOB_FAILED,
    InvalidInputError,
    UsageError,
    WaitTimeoutError,
)
from queuectl.core.models import CorruptRecordError, Job, JobState, check_job_id
from queuectl.core.settings import NAME_PATTERN
from queuectl.core.tracecontext import trace_id_of

FOLLOW_POLL = 0.3
COMMAND_WIDTH = 60

JobId = Annotated[str, typer.Argument(metavar="ID", help="Job id.", show_default=False)]
JsonFlag = Annotated[bool, typer.Option(
    "--json", help="Print JSON instead of a table (schemas/*.schema.json).")]


def job_row(job: Job, now: float | None = None) -> list[str]:
    """One table row: id, state, queue, attempts, last change, command."""
    return [job.id, job.state.value, job.queue, str(job.attempts), render.ago(job.updated_at, now),
            render.clean(job.command, COMMAND_WIDTH)]


JOB_HEADERS = ["ID", "STATE", "QUEUE", "ATTEMPTS", "UPDATED", "COMMAND"]


def list_jobs(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option(
        "--state", "-s", metavar="STATE", show_default=False,
        help="Only this state: " + ", ".join(s.value for s in JobState) + ".",
    )] = None,
    queue: Annotated[str | None, typer.Option(
        "--queue", metavar="NAME", help="Only this queue.", show_default=False,
    )] = None,
    limit: Annotated[int, typer.Option(
        "--limit", "-n", metavar="N", min=0, help="At most N jobs (0: all of them).",
    )] = 50,
    cursor: Annotated[str | None, typer.Option(
        "--cursor", metavar="CURSOR", show_default=False,
        help="Go on from where a previous list stopped (it prints the cursor).",
    )] = None,
    as_json: JsonFlag = False,
) -> None:
    """List jobs, grouped by state in lifecycle order.

    Reads only what it prints: a queue's jobs come from that queue's own lists and
    indexes. With --json the jobs stream out as they are read, in bounded memory.
    """
    wanted = parse_state(state) if state is not None else None
    if queue is not None and not re.fullmatch(NAME_PATTERN, queue):
        raise InvalidInputError(f"invalid queue name {queue!r}")
    client = get_client(ctx)
    jobs, seen = client.iter_jobs(wanted, queue, limit, cursor)
    if as_json:
        render.emit_json_stream(job_json(job) for job in jobs)
    else:
        rows = [job_row(job) for job in jobs]
        print(render.table(JOB_HEADERS, rows) if rows else "no jobs")
    sys.stdout.flush()
    note_unreadable(seen.unreadable)
    if seen.next_cursor is not None:
        # Counted only when rows were left out, from the structures' lengths.
        count = client.count_jobs(wanted, queue)
        what = (f"{wanted.value} " if wanted else "") + "jobs" + (
            f" of queue {queue}" if queue else "")
        _note(render.page_note(seen.shown, count.total, what, seen.next_cursor,
                               exact=count.exact, cursor=cursor))


def note_unreadable(ids: list[str]) -> None:
    """Say on stderr which records were skipped because they cannot be read."""
    if ids:
        shown = ", ".join(render.clean(i, 40) for i in ids[:5])
        more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
        _note(f"skipped {len(ids)} record(s) that cannot be read: {shown}{more} "
              "(queuectl doctor)")


def _opt(value: object, unit: str = "") -> str:
    return "-" if value is None else f"{value}{unit}"


def show(ctx: typer.Context, job_id: JobId, as_json: JsonFlag = False) -> None:
    """Show every field of one job, with times in ISO 8601 and relative to now."""
    client = get_client(ctx)
    try:
        job = client.get(job_id)
    except CorruptRecordError:
        show_raw(client.find_raw(job_id), client.quarantine_reason(job_id), as_json=as_json)
        raise
    reason = client.quarantine_reason(job_id) if job.state is JobState.QUARANTINED else None
    if as_json:
        render.emit_json(job_json(job))
        return
    t = render.when
    rows = [
        ("id", job.id),
        ("command", render.clean(job.command)),
        ("queue", job.queue),
        ("state", job.state.value),
        ("attempts", str(job.attempts)),
        ("max_retries", _opt(job.max_retries) if job.max_retries is not None
         else "- (config max-retries)"),
        ("timeout", format_duration(job.timeout) if job.timeout is not None
         else "- (config job-timeout)"),
        ("run_at", t(job.run_at)),
        ("created_at", t(job.created_at)),
        ("updated_at", t(job.updated_at)),
        ("started_at", t(job.started_at)),
        ("spawned_at", t(job.spawned_at)),
        ("finished_at", t(job.finished_at)),
        ("exit_code", _opt(job.exit_code)),
        ("last_error", render.clean(job.last_error)),
        ("worker", _opt(job.worker)),
        ("trace_id", trace_id_of(job.trace_context) or "-"),
        ("output", f"{job.log_size} bytes produced, last {job.log_kept} kept "
                   f"(queuectl logs {job.id})"),
    ]
    if job.env:
        rows.insert(7, ("env", render.clean(" ".join(f"{k}={v}" for k, v in job.env.items()))))
    if reason is not None:
        rows.insert(4, ("quarantine", render.clean(reason)))
    print(render.pairs(rows))


def show_raw(raw: dict[str, str], reason: str | None, *, as_json: bool) -> None:
    """A record that does not parse, field by field as stored (control characters escaped)."""
    if as_json:
        render.emit_json({"raw": raw, "quarantine": reason})
        return
    rows = [(render.clean(name, 40), render.clean(value, 200))
            for name, value in sorted(raw.items())]
    if reason is not None:
        rows.insert(0, ("quarantine", render.clean(reason)))
    print(render.pairs(rows))


def _note(message: str) -> None:
    sys.stderr.write(f"queuectl: {message}\n")
    sys.stderr.flush()


def _write(data: bytes) -> None:
    if data:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def _new_bytes(tail: LogTail, printed: int) -> tuple[bytes, int]:
    """The part of ``tail`` after stream offset ``printed``, and how many bytes were skipped."""
    start = tail.total - len(tail.data)  # stream offset of the first kept byte
    skipped = max(start - printed, 0)
    return tail.data[max(printed - start, 0):], skipped


def logs(
    ctx: typer.Context,
    job_id: JobId,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="Keep printing new output until the job ends.")] = False,
    timeout: Annotated[str | None, typer.Option(
        "--timeout", "-t", metavar="DURATION", show_default=False,
        help="With --follow: give up after this long (default: until the job ends) and exit 7.",
    )] = None,
) -> None:
    """Print the kept tail of a job's output, raw, as the command wrote it."""
    limit = parse_duration(timeout) if timeout is not None else None
    if limit is not None and not follow:
        raise UsageError("--timeout only applies to --follow")
    deadline = None if limit is None else time.monotonic() + limit
    client = get_client(ctx)
    tail = client.logs(job_id)
    if tail.total > len(tail.data):
        _note(f"{tail.total - len(tail.data)} earlier bytes were dropped "
              f"(the last {len(tail.data)} bytes are kept)")
    _write(tail.data)
    printed = tail.total
    while follow and not tail.state.ended and tail.state is not JobState.QUARANTINED:
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimeoutError(f"job {job_id} has not ended after {timeout}; "
                                   f"it is {tail.state.value}")
        time.sleep(FOLLOW_POLL)
        tail = client.logs(job_id)
        if tail.total < printed:
            # Only `enqueue --replace` shrinks the count: a new job now has this id.
            _note(f"job {job_id} was replaced; following the new one")
            printed = 0
        data, skipped = _new_bytes(tail, printed)
        if skipped:
            _note(f"{skipped} bytes were dropped while following (output faster than polling)")
        _write(data)
        printed = tail.total


def read_ids(stream: IO[str]) -> list[str]:
    """Job ids from ``wait -``: one a line, surrounding blanks and blank lines ignored."""
    ids = []
    for number, line in enumerate(stream, 1):
        job_id = line.strip()
        if not job_id:
            continue
        try:
            ids.append(check_job_id(job_id))
        except InvalidInputError as exc:
            raise InvalidInputError(f"stdin line {number}: {exc}") from None
    return ids


def wait(
    ctx: typer.Context,
    job_ids: Annotated[list[str], typer.Argument(
        metavar="ID...", help="Job ids; '-' reads more from stdin, one a line.",
        show_default=False,
    )],
    timeout: Annotated[str | None, typer.Option(
        "--timeout", "-t", metavar="DURATION", show_default=False,
        help="Give up after this long (seconds, or 30s, 5m ...) and exit 7; "
        "default: wait until every job ends.",
    )] = None,
    as_json: JsonFlag = False,
) -> None:
    """Block until the jobs end; print each final state; exit 1 unless all completed.

    'queuectl enqueue --quiet -- CMD | queuectl wait -' waits for what was just enqueued.
    """
    given: list[str] = []
    for job_id in job_ids:
        given += read_ids(sys.stdin) if job_id == "-" else [job_id]
    ids = list(dict.fromkeys(given))
    limit = parse_duration(timeout) if timeout is not None else None
    # Nothing to wait for (an empty pipe) is not an error: every one of none completed.
    ended = get_client(ctx).wait(ids, timeout=limit) if ids else {}
    if as_json:
        render.emit_json(wait_json(ids, ended))
    else:
        for job_id in ids:
            print(f"{job_id} {ended[job_id].state.value}")
    if any(ended[i].state is not JobState.COMPLETED for i in ids):
        raise typer.Exit(EXIT_JOB_FAILED)


def cancel(ctx: typer.Context, job_id: JobId) -> None:
    """Cancel a job that has not ended (a running one has its process group stopped)."""
    previous = get_client(ctx).cancel(job_id)
    print(f"{job_id} cancelled (was {previous.value})")
