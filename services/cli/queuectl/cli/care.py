"""``queuectl quarantine`` and ``queuectl doctor``: jobs set aside, and the invariant check."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from queuectl.cli import render
from queuectl.cli.admin import report_notes
from queuectl.cli.context import get_client
from queuectl.cli.jsonout import quarantined_json
from queuectl.core.errors import EXIT_JOB_FAILED, CancelledError, InvalidInputError, UsageError
from queuectl.core.listing import parse_cursor
from queuectl.core.models import JobState

REASON_WIDTH = 80
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (schemas/*.schema.json).")]
Ids = Annotated[list[str] | None, typer.Argument(metavar="ID...", help="Job ids.",
                                                 show_default=False)]
AllFlag = Annotated[bool, typer.Option("--all", help="Every quarantined job.")]


def quarantine_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", metavar="N", min=1,
                                       help="At most N jobs.")] = 100,
    cursor: Annotated[str | None, typer.Option(
        "--cursor", metavar="CURSOR", show_default=False,
        help="Go on from where a previous quarantine list stopped (it prints the cursor).",
    )] = None,
    as_json: JsonFlag = False,
) -> None:
    """Jobs set aside because their record, or a key they had to move to, cannot be used."""
    start = _start(cursor)
    entries, total = get_client(ctx).quarantine_list(limit, start)
    if as_json:
        render.emit_json([quarantined_json(e) for e in entries])
    elif not entries:
        print("the quarantine is empty" if not total else "no quarantined jobs from this cursor on")
    else:
        rows = [[render.clean(e.id, 40), render.ago(e.at), e.by,
                 render.clean(e.state or "-", 12), render.clean(e.reason, REASON_WIDTH)]
                for e in entries]
        print(render.table(["ID", "SINCE", "BY", "STATE", "REASON"], rows))
    sys.stdout.flush()
    if start + limit < total:
        note = render.page_note(len(entries), total, "quarantined jobs",
                                f"quarantined:{start + limit}", cursor=cursor)
        print(f"queuectl: {note}", file=sys.stderr)


def _start(cursor: str | None) -> int:
    """The position a ``quarantined:<position>`` cursor names (0 without one)."""
    if cursor is None:
        return 0
    state, position = parse_cursor(cursor)
    if state is not JobState.QUARANTINED:
        raise InvalidInputError(f"the cursor is for {state.value} jobs, not quarantined ones")
    return position


def _ids(ids: list[str] | None, every: bool) -> list[str] | None:
    if bool(ids) == every:
        raise UsageError("give job ids or --all (not both)")
    return None if every else list(ids or [])


def quarantine_retry(ctx: typer.Context, ids: Ids = None, every: AllFlag = False) -> None:
    """Put quarantined jobs back on their queues with a fresh start (attempts 0).

    Fix the cause first (a key of the wrong type, a field someone overwrote): a job
    whose record still cannot be used stays in quarantine and the reason is printed.
    """
    result = get_client(ctx).quarantine_retry(_ids(ids, every))
    print(f"requeued {result.moved} job{'s' if result.moved != 1 else ''}")
    report_notes(result.notes)


def quarantine_purge(
    ctx: typer.Context, ids: Ids = None, every: AllFlag = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete quarantined jobs and their output for good.

    With --all it asks first on a terminal (answering no exits 130, as Ctrl-C);
    elsewhere it refuses unless --yes is given.
    """
    wanted = _ids(ids, every)
    if wanted is None and not yes:
        if not sys.stdin.isatty():
            raise UsageError("quarantine purge --all deletes jobs for good: add --yes to confirm")
        if not typer.confirm("Delete every quarantined job and its output?", default=False):
            raise CancelledError("cancelled: nothing purged")
    purged = get_client(ctx).quarantine_purge(wanted)
    print(f"purged {purged} job{'s' if purged != 1 else ''}")


def acl(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(
        metavar="SERVICE", help="worker, scheduler or cli.", show_default=False)],
    user: Annotated[str | None, typer.Option(
        "--user", metavar="NAME", help="ACL user name (default: queuectl-SERVICE).",
        show_default=False)] = None,
) -> None:
    """Print the least-privilege ACL SETUSER command for one service (for redis-cli).

    Exactly the commands the service sends, and those its scripts run, on the keys of
    QUEUECTL_KEY_PREFIX; replace PASSWORD. Needs no Redis.
    """
    from queuectl.cli.context import get_state
    from queuectl.core import acl as acl_rules

    settings = get_state(ctx).settings
    # WAIT is needed only where writes wait for replicas.
    print("ACL SETUSER " + " ".join(acl_rules.setuser(
        service, settings.key_prefix, user or "",
        replicas=settings.redis_min_replicas_ack > 0)))


def doctor(
    ctx: typer.Context,
    repair: Annotated[bool, typer.Option(
        "--repair", help="Put stranded jobs back where their state says they belong.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Check that every job is in exactly one place that matches its state.

    Exit 0 when nothing needs attention, 1 when a problem is left (with --repair:
    one it could not repair) or jobs are in quarantine. Safe on a live system.
    """
    from queuectl.core.doctor import run

    report = run(get_client(ctx).store, fix=repair)
    if as_json:
        render.emit_json({"healthy": report.healthy, "jobs": report.jobs, "keys": report.keys,
                          "problems": report.problems, "repaired": report.repaired,
                          "quarantined": report.quarantined})
    else:
        repaired = set(report.repaired)
        for text in report.problems:
            print(f"{render.clean(text)}{' (repaired)' if text in repaired else ''}")
        if report.quarantined:
            print(f"{report.quarantined} job(s) in quarantine (queuectl quarantine list)")
        summary = (f"checked {report.jobs} job records and {report.keys} keys: "
                   f"{len(report.problems)} problem(s)")
        if repair:
            summary += f", {len(report.repaired)} repaired"
        print(summary + ("; healthy" if report.healthy else ""))
    if not report.healthy:
        raise typer.Exit(EXIT_JOB_FAILED)
