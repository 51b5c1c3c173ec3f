"""``queuectl enqueue``: one job from JSON or flags, or many from a JSON-lines file."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated, Any

import typer

from queuectl.cli import render
from queuectl.cli.bulkfile import enqueue_file
from queuectl.cli.command import Command
from queuectl.cli.context import get_client
from queuectl.cli.jsonout import job_json
from queuectl.core import strictjson
from queuectl.core.client import Client
from queuectl.core.durations import parse_duration
from queuectl.core.errors import InvalidInputError, UsageError
from queuectl.core.keys import DEFAULT_QUEUE
from queuectl.core.models import (
    JobSpec,
    check_delay,
    run_at_value,
    spec_from_json,
    spec_from_mapping,
    spec_from_options,
)
from queuectl.core.strictjson import MAX_JOB_JSON_BYTES

DASHDASH = "queuectl.dashdash"

HELP = """Enqueue a job: a JSON object, a command after '--', or a JSON-lines file.

Prints '<id> <state>' (only the id with --quiet, the record with --json).
A JSON value that is not an object is refused, never run as a command; a lone
'-' reads one JSON job object from stdin (it may span lines). With --file,
every line is validated first: one bad line enqueues nothing. A line whose id
already exists is skipped, so a file can be run again after a failure; the
summary says how many were enqueued and skipped. With --file, --quiet prints
the id of each job enqueued, one a line, and --json lists them too, so that
'queuectl enqueue --file jobs.jsonl --quiet | queuectl wait -' works.
"""

EXAMPLES = (
    """queuectl enqueue '{"id":"job1","command":"sleep 2","max_retries":3}'""",
    "queuectl enqueue --id job1 --max-retries 3 --timeout 30 -- 'echo hello'",
    "queuectl enqueue --delay 1m30s -- date",
    "queuectl enqueue --env REGION=eu --env DEBUG=1 -- ./report.sh",
    "queuectl enqueue --file jobs.jsonl          # one job per line; '--file -' reads stdin",
    """echo '{"command":"date"}' | queuectl enqueue -   # one JSON job from stdin""",
)


class EnqueueCommand(Command):
    """Remembers whether '--' was given: only then are the words a shell command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Record how many words follow '--' before Click consumes it, then parse as usual."""
        ctx.meta[DASHDASH] = len(args) - args.index("--") - 1 if "--" in args else None
        return super().parse_args(ctx, args)


def enqueue(
    ctx: typer.Context,
    words: Annotated[list[str] | None, typer.Argument(
        metavar="JSON|COMMAND", show_default=False,
        help="A JSON job, or (after '--') the shell command; several words are joined.",
    )] = None,
    job_id: Annotated[str | None, typer.Option(
        "--id", metavar="ID", help="Job id (default: generated).",
    )] = None,
    queue: Annotated[str | None, typer.Option(
        "--queue", metavar="NAME", help=f"Queue name (default: {DEFAULT_QUEUE}).",
    )] = None,
    max_retries: Annotated[int | None, typer.Option(
        "--max-retries", metavar="N",
        help="Retries after the first run (default: config max-retries).",
    )] = None,
    timeout: Annotated[str | None, typer.Option(
        "--timeout", metavar="DURATION", help="Seconds, or a duration such as 90s or 5m.",
    )] = None,
    delay: Annotated[str | None, typer.Option(
        "--delay", metavar="DURATION", help="Run later: 500ms, 10s, 1m30s, 2h ...",
    )] = None,
    run_at: Annotated[str | None, typer.Option(
        "--run-at", metavar="TIME", help="Run at an ISO 8601 time (UTC unless an offset is given).",
    )] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Replace an existing job with this id if it has ended.",
    )] = False,
    env: Annotated[list[str] | None, typer.Option(
        "--env", "-e", metavar="NAME=VALUE",
        help="A variable for the job's command (repeatable); QUEUECTL_* names are reserved.",
    )] = None,
    file: Annotated[str | None, typer.Option(
        "--file", "-f", metavar="PATH",
        help="JSON-lines file of jobs, one object per line; '-' reads stdin.",
    )] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the stored record (with --file: the summary) as JSON.",
    )] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", help="Print only the job id (with --file: each enqueued id, one a line).",
    )] = False,
) -> None:
    """Enqueue a job (see the examples below)."""
    words = words or []
    flags = {"--id": job_id, "--queue": queue, "--max-retries": max_retries,
             "--timeout": timeout, "--delay": delay, "--run-at": run_at, "--env": env}
    given = [name for name, value in flags.items() if value is not None]
    if file is not None:
        if words or given:
            raise UsageError(f"--file cannot be combined with {(given or ['a job argument'])[0]}")
        enqueue_file(ctx, file, replace=replace, as_json=as_json, quiet=quiet)
        return
    if not words:
        raise UsageError("nothing to enqueue: give a JSON job, a command after '--', or --file")
    after_dashdash = ctx.meta.get(DASHDASH)
    if after_dashdash is not None:
        if len(words) != after_dashdash:
            # `enqueue '{"command":"x"}' --` must not run the JSON text as a shell command.
            raise UsageError("only the command may follow '--', and nothing may precede it")
        if delay is not None and run_at is not None:
            raise UsageError("give --delay or --run-at, not both")
        # Every value is checked (durations, the time in UTC and its bounds, env) before
        # the client connects: a refused command must not have touched Redis.
        # A delay counts from Redis's clock: the script adds it (check_delay checks it).
        seconds = check_delay(parse_duration(delay)) if delay is not None else None
        spec = spec_from_options(
            " ".join(words), job_id=job_id, queue=queue or DEFAULT_QUEUE,
            max_retries=max_retries,
            timeout=parse_duration(timeout) if timeout is not None else None,
            run_at=parse_run_at(run_at) if run_at is not None else None,
            env=parse_env(env) if env is not None else None,
        )
        _store_one(get_client(ctx, start=True), spec, replace=replace, as_json=as_json,
                   quiet=quiet, delay=seconds)
        return
    if len(words) > 1:
        raise UsageError("put the command after '--', e.g. queuectl enqueue -- 'echo hello'")
    if given:
        raise UsageError(f"{given[0]} cannot be combined with a JSON job; put it in the JSON")
    spec = job_from_stdin() if words[0] == "-" else parse_lone_argument(words[0])
    _store_one(get_client(ctx, start=True), spec, replace=replace, as_json=as_json, quiet=quiet)


def _store_one(client: Client, spec: JobSpec, *, replace: bool, as_json: bool,
               quiet: bool, delay: float | None = None) -> None:
    job = client.enqueue_job(spec, replace=replace, delay=delay)  # one round trip
    if as_json:
        render.emit_json(job_json(job))
    elif quiet:
        print(spec.id)
    else:
        print(f"{spec.id} {job.state.value}")


def parse_lone_argument(text: str) -> JobSpec:
    """The note's form: a lone argument must be a JSON object; anything else is refused."""
    if text.lstrip().startswith(("{", "[")):
        return spec_from_json(text)
    try:
        value = strictjson.loads(text)
    except InvalidInputError:
        raise UsageError(
            "a lone argument must be a JSON job object; put a shell command after '--', "
            "e.g. queuectl enqueue -- 'echo hello'"
        ) from None
    return spec_from_mapping(value)


def job_from_stdin() -> JobSpec:
    """``enqueue -``: one JSON job object read from stdin, the way ``--file -`` reads many."""
    data = sys.stdin.buffer.read(MAX_JOB_JSON_BYTES + 1)
    if len(data) > MAX_JOB_JSON_BYTES:
        # Read no further: no job is this long, and stdin may be endless.
        raise InvalidInputError(f"stdin: invalid JSON: longer than {MAX_JOB_JSON_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError("stdin: invalid JSON: not UTF-8 text") from None
    if not text.strip():
        raise InvalidInputError("stdin is empty: 'enqueue -' reads one JSON job object from it")
    try:
        return spec_from_json(text)
    except InvalidInputError as exc:
        if "Extra data" in str(exc):
            # JSON lines: more than one job, which is what --file is for.
            raise InvalidInputError(f"stdin: {exc}: 'enqueue -' reads one JSON job; "
                                    "for one job per line use --file -") from None
        raise InvalidInputError(f"stdin: {exc}") from None


def parse_run_at(text: str) -> datetime:
    """An ISO 8601 time in UTC (an offset is converted; none means UTC), within the
    bounds every run_at has: from 1970 to ten years ahead."""
    try:
        return run_at_value(text)
    except ValueError as exc:
        raise InvalidInputError(f"invalid --run-at {text!r}: {exc}") from None


def parse_env(items: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` flags into a mapping; the names and values are checked by JobSpec."""
    env: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InvalidInputError(f"invalid --env {item!r}: use NAME=VALUE")
        if name in env:
            raise InvalidInputError(f"invalid --env: {name} is given twice")
        env[name] = value
    return env
