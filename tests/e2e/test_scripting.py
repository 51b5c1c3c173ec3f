"""Scripts around the CLI, in a real shell with a real worker: ``enqueue`` piped into
``wait -``, and the run headers ``logs`` shows across DLQ retries."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

from queuectl.core.client import Client
from tests.integration.procs import Procs

from .helpers import QUEUECTL, Cli, Result, assert_ok
from .schemas import json_of

Q = shlex.quote(QUEUECTL)


def shell(env: dict[str, str], script: str, cwd: Path) -> Result:
    """Run ``script`` with sh, as a user's script would run queuectl."""
    proc = subprocess.run(["sh", "-c", script], env=env, cwd=cwd, capture_output=True,
                          timeout=120, check=False, stdin=subprocess.DEVNULL)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def test_enqueue_pipes_into_wait(env: dict[str, str], procs: Procs, client: Client,
                                 tmp_path: Path) -> None:
    worker = procs.worker()
    # The two lines of the README's Scripting paragraph.
    one = shell(env, f"{Q} enqueue --quiet -- 'echo hi' | {Q} wait -", tmp_path)
    job_id, state = assert_ok(one).split()
    assert state == "completed"
    assert client.logs(job_id).data.endswith(b"hi\n")

    (tmp_path / "jobs.jsonl").write_text(
        '{"id":"f1","command":"echo one"}\n'
        '{"command":"echo two"}\n'
        '{"id":"f3","command":"exit 3","max_retries":0}\n')
    many = shell(env, f"{Q} enqueue --file jobs.jsonl --quiet | {Q} wait -", tmp_path)
    # wait's exit code is the pipe's: 1, one job did not complete.
    assert (many.code, many.err) == (1, "")
    (first, generated, third) = [line.split() for line in many.out.splitlines()]
    assert (first, third) == (["f1", "completed"], ["f3", "dead"])
    assert generated[1] == "completed" and client.get(generated[0]).command == "echo two"

    waited = shell(env, f"{Q} enqueue --quiet -- true | {Q} wait - --json", tmp_path)
    assert json_of(waited, "wait")["all_completed"] is True
    worker.signal()
    assert worker.wait_exit() == 0


def test_logs_number_the_runs_across_dlq_retries(cli: Cli, env: dict[str, str],
                                                 procs: Procs, client: Client) -> None:
    worker = procs.worker({"QUEUECTL_WORKER_ID": "w-runs"})
    assert_ok(cli("enqueue", "--id", "again", "--max-retries", "0", "--",
                  "echo ran; exit 1"))
    for _ in range(2):
        assert cli("wait", "again", "--timeout", "60").out == "again dead\n"
        assert assert_ok(cli("dlq", "retry", "again")) == "again requeued\n"
    assert cli("wait", "again", "--timeout", "60").out == "again dead\n"
    worker.signal()
    assert worker.wait_exit() == 0

    headers = re.findall(r"^--- (.*) of job again on w-runs at \S+Z ---$",
                         cli("logs", "again").out, re.MULTILINE)
    # Attempts restart at 0 on a dlq retry; the header also says which run it is.
    assert headers == [
        "attempt 1",
        "attempt 1 (run 2, after a retry from the DLQ or quarantine)",
        "attempt 1 (run 3, after a retry from the DLQ or quarantine)",
    ]
    shown = json.loads(assert_ok(cli("show", "again", "--json")))
    assert (shown["attempts"], shown["state"]) == (1, "dead")
