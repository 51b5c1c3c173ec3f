"""``queuectl status`` and ``queuectl worker list``: what the queue and its processes are doing."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from queuectl.cli import render
from queuectl.cli.context import get_client
from queuectl.cli.jsonout import status_json, sum_totals, worker_json
from queuectl.core.keys import INDEXED_STATES
from queuectl.core.models import iso
from queuectl.core.overview import Status, WorkerInfo, format_seconds

JOBS_WIDTH = 40
# The busiest queues shown by the human form; --json lists every queue.
QUEUES_SHOWN = 50
CLEAR = "\x1b[H\x1b[2J"


def workers_table(workers: list[WorkerInfo], now: float) -> str:
    """Workers as a table; a worker whose status hash expired shows as not alive."""
    if not workers:
        return "no workers"
    rows = [
        [render.clean(w.id), "yes" if w.alive else "no",
         render.clean(w.fields.get("threads", "-")),
         render.clean(w.fields.get("queues", "-") or "-"),
         render.clean(",".join(w.inflight), JOBS_WIDTH) if w.inflight else "-",
         render.ago(w.last_beat, now)]
        for w in workers
    ]
    return render.table(["WORKER", "ALIVE", "THREADS", "QUEUES", "JOBS", "LAST BEAT"], rows)


def status_text(st: Status) -> str:
    """The human form: jobs by state, queues, workers, schedulers."""
    now = st.server_time
    states = render.table(["STATE", "JOBS"], [[name, n] for name, n in st.states.items()])
    shown = sorted(st.queues, key=lambda q: (-(q.pending + q.states["failed"]
                                               + q.states["dead"]), q.name))[:QUEUES_SHOWN]
    queues = render.table(
        ["QUEUE", "PENDING", "OLDEST", "PROCESSING", "SCHEDULED", "FAILED", "DEAD",
         "COMPLETED", "CANCELLED"],
        # OLDEST: how long the longest-waiting pending job has been ready to run.
        [[q.name, q.pending, format_seconds(q.oldest_ready_age) if q.pending else "-",
          q.processing, *(q.states[s] for s in INDEXED_STATES)]
         for q in sorted(shown, key=lambda q: q.name)],
    )
    if len(st.queues) > len(shown):
        queues += (f"\n({len(st.queues) - len(shown)} quieter queues not shown; "
                   "status --json lists them all)")
    # Counters of runs and moves since counting began, named so that none reads as a
    # state: "failed" above is jobs waiting for a retry now, runs_failed counts failures.
    totals = "totals: " + ", ".join(f"{name} {n:,}" for name, n in sum_totals(st).items())
    if st.schedulers:
        schedulers = render.table(
            ["SCHEDULER", "LAST BEAT"],
            [[sid, render.ago(beat, now)] for sid, beat in sorted(st.schedulers.items())],
        )
    else:
        schedulers = "no schedulers"
    parts = [
        states,
        queues,
        totals,
        workers_table(st.workers, now),
        schedulers,
    ]
    if st.problems:
        parts.append("problems:\n" + "\n".join(f"  {render.clean(p)}" for p in st.problems))
    return "\n\n".join(parts)


def status(
    ctx: typer.Context,
    watch: Annotated[bool, typer.Option(
        "--watch", "-w",
        help="Refresh until Ctrl-C (exit 130; with --json: one JSON line each time).",
    )] = False,
    interval: Annotated[float, typer.Option(
        "--interval", metavar="SECONDS", min=0.1, max=3600,
        help="Seconds between refreshes with --watch.",
    )] = 2.0,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print JSON (schemas/status.schema.json).")] = False,
) -> None:
    """Counts by state and by queue, running totals, workers and schedulers."""
    client = get_client(ctx)
    if not watch:
        st = client.status()
        if as_json:
            render.emit_json(status_json(st))
        else:
            print(status_text(st))
        return
    in_place = sys.stdout.isatty()
    # No KeyboardInterrupt handler: Ctrl-C ends this as every other command, with 130
    # (queuectl.cli.main), so that one rule holds for every command a script runs.
    while True:
        st = client.status()
        if as_json:
            render.emit_json_line(status_json(st))
        else:
            head = CLEAR if in_place else "\n"
            sys.stdout.write(f"{head}queuectl status at {iso(st.server_time)}, every "
                             f"{interval:g}s (Ctrl-C to stop)\n\n{status_text(st)}\n")
            sys.stdout.flush()
        time.sleep(interval)


def worker_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print JSON (schemas/worker-list.schema.json).")] = False,
) -> None:
    """Registered workers: alive or not, threads, queues, jobs held, last heartbeat."""
    st = get_client(ctx).status()
    if as_json:
        render.emit_json([worker_json(w, st.server_time) for w in st.workers])
    else:
        print(workers_table(st.workers, st.server_time))
