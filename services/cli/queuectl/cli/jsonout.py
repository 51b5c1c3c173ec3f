"""The documents ``--json`` prints, one builder per schema in ``schemas/*.schema.json``.

Each document is a TypedDict, so mypy holds the code to one shape; the schemas hold
the output to it (the e2e tests validate every ``--json`` against them). The rules
they share: numbers are JSON numbers, a value that is not known is ``null`` (the key
is never left out), times are ISO 8601 UTC ending in ``Z``, and a counter's name says
what it counts (``runs_failed``), never a state's word (``failed`` = jobs in that
state now).
"""

from __future__ import annotations

import re
from typing import Literal, TypedDict, cast

from queuectl.core.admin_ops import QuarantineEntry
from queuectl.core.client import Settled
from queuectl.core.models import Job, iso
from queuectl.core.models import stored_count as _count
from queuectl.core.overview import TOTALS, Status, WorkerInfo
from queuectl.core.policy import POLICY_KEYS, PolicyView
from queuectl.core.tracecontext import trace_id_of


def _time(ts: float | None) -> str | None:
    return None if ts is None else iso(ts)


def _reported(raw: str | None, pattern: re.Pattern[str]) -> str | None:
    """A status hash field as written by a worker; None if absent or if anything else wrote
    it (the hash is plain Redis data: the document keeps its schema whatever it holds)."""
    return raw if raw is not None and pattern.fullmatch(raw) else None


_ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_WORKER_STATE = re.compile(r"running|stopping")


# -- jobs: show, list, dlq list, enqueue, wait ------------------------------------------------
class JobJson(TypedDict):
    id: str
    command: str
    queue: str
    state: str
    attempts: int
    max_retries: int | None
    timeout: float | None
    run_at: str | None
    created_at: str | None
    updated_at: str | None
    started_at: str | None
    spawned_at: str | None
    finished_at: str | None
    exit_code: int | None
    last_error: str | None
    worker: str | None
    interrupted: int
    lost: int
    env: dict[str, str]
    log_size: int
    log_kept: int
    trace_id: str | None


def job_json(job: Job) -> JobJson:
    """A job as every command prints it (``schemas/job.schema.json``)."""
    return {
        "id": job.id, "command": job.command, "queue": job.queue, "state": job.state.value,
        "attempts": job.attempts, "max_retries": job.max_retries, "timeout": job.timeout,
        "run_at": _time(job.run_at), "created_at": _time(job.created_at),
        "updated_at": _time(job.updated_at), "started_at": _time(job.started_at),
        "spawned_at": _time(job.spawned_at), "finished_at": _time(job.finished_at),
        "exit_code": job.exit_code,
        "last_error": job.last_error, "worker": job.worker, "interrupted": job.interrupted,
        "lost": job.lost, "env": dict(job.env), "log_size": job.log_size,
        "log_kept": job.log_kept, "trace_id": trace_id_of(job.trace_context),
    }


class UnreadableJson(TypedDict):
    raw: dict[str, str]
    quarantine: str | None


class WaitedJson(TypedDict):
    id: str
    state: str
    job: JobJson | None


class WaitJson(TypedDict):
    all_completed: bool
    jobs: list[WaitedJson]


def wait_json(ids: list[str], ended: dict[str, Settled]) -> WaitJson:
    """How each waited-for job ended (``schemas/wait.schema.json``); ``job`` is null for a
    record that cannot be read."""
    jobs: list[WaitedJson] = []
    for job_id in ids:
        settled = ended[job_id]
        record = job_json(settled.job) if settled.job is not None else None
        jobs.append({"id": job_id, "state": settled.state.value, "job": record})
    return {"all_completed": all(j["state"] == "completed" for j in jobs), "jobs": jobs}


# -- status and workers ---------------------------------------------------------------------
class TotalsJson(TypedDict):
    runs_completed: int
    runs_failed: int
    retries: int
    buried: int
    runs_lost: int


def totals_json(totals: dict[str, int]) -> TotalsJson:
    """The running totals of a queue (or their sum), every counter present."""
    return {
        "runs_completed": totals.get("runs_completed", 0),
        "runs_failed": totals.get("runs_failed", 0),
        "retries": totals.get("retries", 0),
        "buried": totals.get("buried", 0),
        "runs_lost": totals.get("runs_lost", 0),
    }


def sum_totals(st: Status) -> TotalsJson:
    """Every queue's running totals added up."""
    return totals_json({name: sum(q.totals.get(name, 0) for q in st.queues)
                        for name in TOTALS.values()})


class WorkerJson(TypedDict):
    id: str
    alive: bool
    last_beat: str | None
    last_beat_age: float
    host: str | None
    pid: int | None
    started_at: str | None
    state: str | None
    threads: int | None
    slots_alive: int | None
    queues: list[str]
    jobs: list[str]
    runs_finished: int | None
    runs_failed: int | None
    environment_failures: int | None


def worker_json(worker: WorkerInfo, now: float) -> WorkerJson:
    """A worker: its registry entry, the jobs it holds and what its status hash reports
    (null for each field of a worker whose status expired)."""
    f = worker.fields
    return {
        "id": worker.id, "alive": worker.alive, "last_beat": _time(worker.last_beat),
        "last_beat_age": round(now - worker.last_beat, 3), "host": f.get("host"),
        "pid": _count(f.get("pid")), "started_at": _reported(f.get("started_at"), _ISO),
        "state": _reported(f.get("state"), _WORKER_STATE), "threads": _count(f.get("threads")),
        "slots_alive": _count(f.get("slots_alive")),
        "queues": [q for q in f.get("queues", "").split(",") if q], "jobs": worker.inflight,
        "runs_finished": _count(f.get("processed")), "runs_failed": _count(f.get("failed")),
        "environment_failures": _count(f.get("environment_failures")),
    }


class QueueJson(TypedDict):
    name: str
    pending: int
    scheduled: int
    failed: int
    dead: int
    completed: int
    cancelled: int
    processing: int
    retries_due: int
    oldest_ready_age: float
    totals: TotalsJson


class SchedulerJson(TypedDict):
    id: str
    last_beat: str | None
    last_beat_age: float


class StatusJson(TypedDict):
    server_time: str | None
    states: dict[str, int]
    totals: TotalsJson
    queues: list[QueueJson]
    workers: list[WorkerJson]
    schedulers: list[SchedulerJson]
    problems: list[str]


def status_json(st: Status) -> StatusJson:
    """The whole status (``schemas/status.schema.json``)."""
    now = st.server_time
    return {
        "server_time": _time(now),
        "states": dict(st.states),
        "totals": sum_totals(st),
        "queues": [{"name": q.name, "pending": q.pending, "scheduled": q.states["scheduled"],
                    "failed": q.states["failed"], "dead": q.states["dead"],
                    "completed": q.states["completed"], "cancelled": q.states["cancelled"],
                    "processing": q.processing, "retries_due": q.retries_due,
                    "oldest_ready_age": q.oldest_ready_age,
                    "totals": totals_json(q.totals)} for q in st.queues],
        "workers": [worker_json(w, now) for w in st.workers],
        "schedulers": [{"id": sid, "last_beat": _time(beat),
                        "last_beat_age": round(now - beat, 3)}
                       for sid, beat in sorted(st.schedulers.items())],
        "problems": list(st.problems),
    }


# -- config -----------------------------------------------------------------------------------
Source = Literal["redis", "env", "default", "invalid"]


class SettingJson(TypedDict):
    value: float | int
    source: Source
    invalid: str | None


class ConfigGetJson(SettingJson):
    key: str


def setting_json(name: str, view: PolicyView) -> SettingJson:
    """One policy key: its value in effect, where that comes from, and why a stored value
    is not used."""
    value: float | int = getattr(view.policy, POLICY_KEYS[name].attr)
    return {"value": value, "source": cast(Source, view.source(name)),
            "invalid": view.invalid.get(name)}


def config_get_json(name: str, view: PolicyView) -> ConfigGetJson:
    """``config get --json`` (``schemas/config-get.schema.json``)."""
    return {"key": name, **setting_json(name, view)}


def config_list_json(view: PolicyView) -> dict[str, SettingJson]:
    """``config list --json``: every key (``schemas/config-list.schema.json``)."""
    return {name: setting_json(name, view) for name in POLICY_KEYS}


# -- quarantine --------------------------------------------------------------------------------
class QuarantinedJson(TypedDict):
    id: str
    since: str | None
    by: str
    state: str | None
    reason: str


def quarantined_json(entry: QuarantineEntry) -> QuarantinedJson:
    """One quarantined job (``schemas/quarantine-list.schema.json``); its record may not parse,
    so only what the quarantine itself says."""
    return {"id": entry.id, "since": _time(entry.at), "by": entry.by,
            "state": entry.state or None, "reason": entry.reason}


# -- redis status ------------------------------------------------------------------------------
INFO_COUNTS = frozenset({"process_id", "uptime_in_seconds", "aof_enabled", "connected_clients"})


def redis_info_json(info: dict[str, str]) -> dict[str, str | int]:
    """The INFO fields ``redis status`` shows, the counts among them as numbers."""
    return {name: int(value) if name in INFO_COUNTS and value.isdigit() else value
            for name, value in info.items()}
