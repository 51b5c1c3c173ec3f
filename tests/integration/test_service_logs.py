"""Service logs as JSON lines (QUEUECTL_LOG_FORMAT=json) from real worker and scheduler
processes: every stderr line is one JSON object, and every line about a job carries the
job's id, queue, attempt and trace id."""

from __future__ import annotations

import json
import re
import signal
from typing import Any

from queuectl.core.client import Client
from queuectl.core.models import JobState
from tests.e2e.helpers import run_cli

from .procs import Procs, wait_ended, wait_registered

TRACES = {"ok1": "00-11111111111111111111111111111111-1111111111111111-01",
          "bad1": "00-22222222222222222222222222222222-2222222222222222-01"}
JSON_LOGS = {"QUEUECTL_LOG_FORMAT": "json", "QUEUECTL_LOG_LEVEL": "debug"}


def json_lines(stderr: str, service: str) -> list[dict[str, Any]]:
    lines = stderr.splitlines()
    assert lines, f"{service} logged nothing"
    docs = []
    for line in lines:
        doc = json.loads(line)  # every line, not just most
        assert isinstance(doc, dict), line
        assert {"time", "level", "service", "logger", "message"} <= doc.keys(), line
        assert doc["service"] == service
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["time"]), line
        docs.append(doc)
    return docs


def test_every_line_is_json_and_job_lines_carry_the_job(
        procs: Procs, client: Client, env: dict[str, str]) -> None:
    worker = procs.worker(JSON_LOGS)
    scheduler = procs.scheduler(JSON_LOGS)
    wait_registered(client, worker)
    for job_id, command in (("ok1", "true"), ("bad1", "echo oops; exit 3")):
        # Tracing is off everywhere: the job carries its caller's context all the same.
        done = run_cli({**env, "TRACEPARENT": TRACES[job_id]},
                       ["enqueue", "--id", job_id, "--max-retries", "0", "--", command])
        assert done.code == 0, done.err
    jobs = wait_ended(client, ["ok1", "bad1"])
    assert (jobs["ok1"].state, jobs["bad1"].state) == (JobState.COMPLETED, JobState.DEAD)
    worker.signal(signal.SIGTERM)
    scheduler.signal(signal.SIGTERM)
    assert worker.wait_exit() == 0 and scheduler.wait_exit() == 0

    docs = json_lines(worker.stderr(), "queuectl-worker")
    about = {job_id: [d for d in docs if f"job {job_id} " in d["message"]] for job_id in TRACES}
    assert any("completed" in d["message"] for d in about["ok1"])
    assert any("moved to the DLQ" in d["message"] and d["level"] == "WARNING"
               for d in about["bad1"])
    for job_id, lines in about.items():
        for doc in lines:
            assert (doc["job_id"], doc["queue"], doc["attempt"]) == (job_id, "default", 1), doc
            assert doc["trace_id"] == TRACES[job_id][3:35], doc
    assert any(d["message"].startswith("worker ") and "started" in d["message"] for d in docs)
    assert all("job_id" not in d for d in docs if "job " not in d["message"])
    json_lines(scheduler.stderr(), "queuectl-scheduler")
