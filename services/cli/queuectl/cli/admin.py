"""Administration: the dead letter queue, runtime config, workers, scheduler, embedded Redis."""

from __future__ import annotations

import re
import sys
from typing import Annotated

import typer

from queuectl.cli import render
from queuectl.cli.context import get_client, get_state
from queuectl.cli.jobs import note_unreadable
from queuectl.cli.jsonout import config_get_json, config_list_json, job_json, redis_info_json
from queuectl.core import embedded, policy
from queuectl.core.errors import (
    CancelledError,
    InvalidInputError,
    RedisUnavailableError,
    UsageError,
)
from queuectl.core.redact import mask_url
from queuectl.core.settings import NAME_PATTERN

ERROR_WIDTH = 60
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (schemas/*.schema.json).")]


# -- dlq -------------------------------------------------------------------------------------
def dlq_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(
        "--limit", "-n", metavar="N", min=1, help="At most N jobs.",
    )] = 100,
    cursor: Annotated[str | None, typer.Option(
        "--cursor", metavar="CURSOR", show_default=False,
        help="Go on from where a previous dlq list stopped (it prints the cursor).",
    )] = None,
    as_json: JsonFlag = False,
) -> None:
    """Jobs that exhausted their retries, oldest first."""
    page = get_client(ctx).dlq_list(limit, cursor)
    if as_json:
        render.emit_json([job_json(job) for job in page.jobs])
    elif not page.jobs:
        print("the dead letter queue is empty" if not page.total
              else "no dead jobs from this cursor on")
    else:
        rows = [[j.id, j.queue, j.attempts, _opt_int(j.exit_code), render.ago(j.finished_at),
                 render.clean(j.last_error, ERROR_WIDTH)] for j in page.jobs]
        print(render.table(["ID", "QUEUE", "ATTEMPTS", "EXIT", "DIED", "LAST ERROR"], rows))
    sys.stdout.flush()
    note_unreadable(page.unreadable)
    if page.next_cursor is not None:
        note = render.page_note(len(page.jobs), page.total or 0, "dead jobs", page.next_cursor,
                                cursor=cursor)
        print(f"queuectl: {note}", file=sys.stderr)


def _opt_int(value: int | None) -> str:
    return "-" if value is None else str(value)


def dlq_retry(
    ctx: typer.Context,
    job_id: Annotated[str | None, typer.Argument(
        metavar="ID", help="Job id.", show_default=False,
    )] = None,
    retry_all: Annotated[bool, typer.Option("--all", help="Retry every dead job.")] = False,
) -> None:
    """Requeue a dead job (or all of them) with a fresh set of retries."""
    if (job_id is None) == (not retry_all):
        raise UsageError("give a job id or --all (not both)")
    client = get_client(ctx)
    result = client.dlq_retry(job_id) if job_id is not None else client.dlq_retry_all()
    if job_id is not None and result.moved == 1:
        print(f"{job_id} requeued")
    else:
        print(f"requeued {result.moved} job{'s' if result.moved != 1 else ''}")
    report_notes(result.notes)


def report_notes(notes: list[str]) -> None:
    """Print what a bulk transition set aside (moved to quarantine, left in place)."""
    for note in notes[:20]:
        print(f"queuectl: {render.clean(note)}", file=sys.stderr)
    if len(notes) > 20:
        print(f"queuectl: ... and {len(notes) - 20} more", file=sys.stderr)


def dlq_purge(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Do not ask (required when stdin is not a terminal).")] = False,
) -> None:
    """Delete every dead job and its output for good.

    On a terminal it asks first (answering no exits 130, as Ctrl-C); elsewhere
    (scripts, CI) it refuses unless --yes is given, so that a stray pipe cannot
    delete anything.
    """
    if not yes and not sys.stdin.isatty():
        raise UsageError("dlq purge deletes jobs for good: add --yes to confirm")
    client = get_client(ctx)
    if not yes:
        count = client.status().states["dead"]
        if not typer.confirm(f"Delete {count} dead job(s) and their output?", default=False):
            raise CancelledError("cancelled: nothing purged")
    purged = client.dlq_purge()
    print(f"purged {purged} job{'s' if purged != 1 else ''}")


# -- config ----------------------------------------------------------------------------------
def config_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every runtime policy key, its effective value and where it comes from.

    A value stored in Redis that does not parse (or is out of bounds) is shown as
    invalid; every service uses the env or default value instead and warns about it.
    """
    view = get_client(ctx).config_view()
    settings = config_list_json(view)
    if as_json:
        render.emit_json(settings)
    else:
        rows = [[name, policy.format_value(s["value"]), s["source"],
                 policy.POLICY_KEYS[name].help] for name, s in settings.items()]
        print(render.table(["KEY", "VALUE", "SOURCE", "MEANING"], rows))
    sys.stdout.flush()
    for name, why in view.invalid.items():
        print(f"queuectl: config {name}: {render.clean(why)}", file=sys.stderr)


def config_get(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(
        metavar="KEY", help="Config key, e.g. max-retries.", show_default=False,
    )],
    as_json: JsonFlag = False,
) -> None:
    """Print the effective value of one key."""
    policy.policy_key(key)  # an unknown key is refused before Redis is touched
    if as_json:
        render.emit_json(config_get_json(key, get_client(ctx).config_view()))
    else:
        print(get_client(ctx).config_get(key))


def config_set(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(
        metavar="KEY", help="Config key, e.g. backoff-base.", show_default=False,
    )],
    value: Annotated[str, typer.Argument(
        metavar="VALUE", help="New value.", show_default=False,
    )],
) -> None:
    """Validate and store a value; workers and schedulers use it within a second.

    Times take a number of seconds or a duration (500ms, 90s, 5m, 1h30m, 7d).
    """
    policy.normalise(key, value)  # a bad key or value is refused before Redis is touched
    stored = get_client(ctx).config_set(key, value)
    print(f"{key} = {stored}")


def config_unset(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(
        metavar="KEY", help="Config key, e.g. backoff-base.", show_default=False,
    )],
) -> None:
    """Drop a stored value: the environment's (QUEUECTL_POLICY__*) or the default applies."""
    policy.policy_key(key)  # an unknown key is refused before Redis is touched
    print(f"{key} = {get_client(ctx).config_unset(key)}")


# -- worker and scheduler ----------------------------------------------------------------------
def parse_queues(text: str) -> list[str]:
    """``a,b,c`` into names, validated, in priority order."""
    names = [q.strip() for q in text.split(",") if q.strip()]
    if not names:
        raise InvalidInputError("--queues needs at least one queue name")
    for name in names:
        if not re.fullmatch(NAME_PATTERN, name):
            raise InvalidInputError(f"invalid queue name {name!r}")
    if len(set(names)) != len(names):
        raise InvalidInputError("--queues names a queue twice")
    return names


def worker_start(
    ctx: typer.Context,
    count: Annotated[int | None, typer.Option(
        "--count", "-c", metavar="N", min=1, max=512,
        help="Threads (jobs run at once); default QUEUECTL_CONCURRENCY.")] = None,
    processes: Annotated[int | None, typer.Option(
        "--processes", "-p", metavar="N", min=1, max=64,
        help="Worker processes, each with its own id and --count threads; default "
             "QUEUECTL_WORKER_PROCESSES.")] = None,
    queues: Annotated[str | None, typer.Option(
        "--queues", metavar="A,B,C", help="Comma-separated queues, highest priority first; "
        "default QUEUECTL_QUEUES.")] = None,
) -> None:
    """Run a worker in the foreground until Ctrl-C, SIGTERM or 'queuectl worker stop'."""
    from queuectl.worker.main import run

    names = parse_queues(queues) if queues is not None else None
    raise typer.Exit(run(get_state(ctx).settings, count=count, queues=names,
                         processes=processes))


def worker_stop(
    ctx: typer.Context,
    worker_id: Annotated[str | None, typer.Argument(
        metavar="ID", help="Worker id.", show_default=False,
    )] = None,
    stop_all: Annotated[bool, typer.Option("--all", help="Stop every live worker.")] = False,
) -> None:
    """Ask workers to stop gracefully: they fetch nothing more and let running jobs finish."""
    if (worker_id is None) == (not stop_all):
        raise UsageError("give a worker id or --all (not both)")
    if worker_id is not None and not re.fullmatch(NAME_PATTERN, worker_id):
        raise InvalidInputError("invalid worker id: use 1-128 characters of A-Z a-z 0-9 . _ -")
    stopped = get_client(ctx).stop_workers(worker_id)
    if not stopped:
        print("no live workers")
    for wid in stopped:
        print(f"{wid} asked to stop")


def scheduler(ctx: typer.Context) -> None:
    """Run the scheduler in the foreground until Ctrl-C or SIGTERM."""
    from queuectl.scheduler.main import run

    raise typer.Exit(run(get_state(ctx).settings))


# -- embedded redis ------------------------------------------------------------------------------
def redis_status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Where QueueCTL's Redis is and whether it answers (never starts the embedded one)."""
    state = get_state(ctx)
    settings = state.settings
    if settings.redis_url:
        kind, where = "external", mask_url(settings.redis_url)
        running = True  # an unreachable external Redis is an error (exit 6), raised below
    else:
        kind, where = "embedded", embedded.socket_url(settings.data_dir)
        running = embedded.is_running(settings.data_dir)
    info = state.client.server_info() if running else {}
    if as_json:
        render.emit_json({"kind": kind, "url": where, "running": running,
                          "info": redis_info_json(info),
                          "data_dir": str(settings.data_dir) if kind == "embedded" else None})
    else:
        rows = [("redis", f"{kind}, {'running' if running else 'not running'}"),
                ("url", where)]
        if kind == "embedded":
            rows.append(("data_dir", str(settings.data_dir)))
        rows += [(name, value) for name, value in info.items()]
        print(render.pairs(rows))
    if not running:
        raise RedisUnavailableError("the embedded Redis is not running; start it with: "
                                    "queuectl redis start")


def redis_start(ctx: typer.Context) -> None:
    """Start the embedded Redis (if it is not running already) and say where it is."""
    settings = get_state(ctx).settings
    if settings.redis_url:
        raise UsageError("QUEUECTL_REDIS_URL is set: redis start only starts the embedded "
                         "server, used when no URL is configured")
    was_running = embedded.is_running(settings.data_dir)
    url = embedded.ensure_running(settings.data_dir)
    print(f"embedded Redis {'already running' if was_running else 'started'} at {url} "
          f"(data in {settings.data_dir})")


def redis_stop(ctx: typer.Context) -> None:
    """Stop the embedded Redis (SHUTDOWN: its data stays in the append-only file)."""
    settings = get_state(ctx).settings
    if settings.redis_url:
        raise UsageError(
            "QUEUECTL_REDIS_URL is set: that Redis is not QueueCTL's to stop; "
            "redis stop only stops the embedded server"
        )
    if embedded.stop(settings.data_dir):
        print(f"embedded Redis stopped; its data stays in {settings.data_dir}")
    else:
        print("embedded Redis is not running")
