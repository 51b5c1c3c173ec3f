"""One run of a job: exit codes, timeouts, interrupts, and where its output goes."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest

from queuectl.core.errors import LeaseLostError
from queuectl.core.settings import LogTarget
from queuectl.core.store import Fetched
from queuectl.worker.executor import ExecConfig, Execution
from queuectl.worker.logdir import LogDir
from queuectl.worker.outcome import Ending
from queuectl.worker.remains import ProcessControl
from tests.integration.procs import eventually

from .conftest import make_cfg
from .helpers import execute, fetched, new_id, none_left, pid_from, survivors

HEADER = re.compile(rb"^--- attempt 1 of job (\S+) on w-test at \S+ ---\n")


@pytest.mark.parametrize(("command", "code", "error"), [
    ("true", 0, ""),
    ("exit 3", 3, "exit code 3"),
    ("false", 1, "exit code 1"),
    ("echo oops >&2; exit 4", 4, "exit code 4: oops"),
    ("no-such-command-here", 127, "exit code 127: /bin/sh: 1: no-such-command-here: not found"),
    ("kill -TERM $$", 143, "killed by signal SIGTERM"),
    ("if", 2, "exit code 2: /bin/sh: 1: Syntax error: end of file unexpected"),
])
def test_exit_codes_and_errors_are_those_of_sh_c(
        cfg: ExecConfig, command: str, code: int, error: str) -> None:
    result = execute(cfg, command)
    assert result.ending is Ending.EXITED
    assert result.exit_code == code
    assert result.error.startswith(error), result.error
    assert result.succeeded is (code == 0)


def test_the_job_sees_sh_semantics_and_its_environment(cfg: ExecConfig) -> None:
    job_id = new_id()
    result = execute(cfg, 'echo "$0|$#|$?|$QUEUECTL_JOB_ID|$QUEUECTL_JOB_ATTEMPT"', job_id=job_id)
    assert result.exit_code == 0
    assert result.chunk.splitlines()[-1] == f"/bin/sh|0|0|{job_id}|1".encode()


def test_every_job_reads_an_empty_stdin_the_worker_keeps_open(cfg: ExecConfig) -> None:
    for _ in range(2):  # the one /dev/null descriptor serves every run, and stays open
        result = execute(cfg, "wc -c; readlink /proc/self/fd/0; echo x >&0 && echo writable")
        assert result.chunk.splitlines()[-3:] == [b"0", b"/dev/null", b"writable"]
    assert cfg.procs.stdin >= 0


@pytest.mark.parametrize("trap", ["", "trap '' TERM; "], ids=["plain", "ignores-sigterm"])
def test_a_timeout_kills_children_and_grandchildren(
        cfg: ExecConfig, tmp_path: Path, trap: str) -> None:
    job_id = new_id()
    pids = tmp_path / "pids"
    command = (f"{trap}sh -c '{trap}sleep 300 & echo $! > {pids}.g; wait' & "
               f"echo $! > {pids}.c; sleep 300")
    result = execute(cfg, command, job_id=job_id, timeout=1)
    assert result.ending is Ending.TIMED_OUT
    assert result.exit_code is None
    assert result.error == "timed out after 1s"
    assert pid_from(Path(f"{pids}.c")) and pid_from(Path(f"{pids}.g"))
    none_left(job_id)


def test_interrupt_stops_the_job_and_reports_interrupted(cfg: ExecConfig) -> None:
    job = fetched("sleep 300")
    execution = Execution(job, cfg, lambda *_: None)
    results = []
    thread = threading.Thread(target=lambda: results.append(execution.run()))
    thread.start()
    eventually(lambda: survivors(job.id), what="the job started")
    execution.interrupt()
    thread.join(30)
    assert not thread.is_alive()
    assert results[0].ending is Ending.INTERRUPTED
    none_left(job.id)


def test_interrupt_before_the_run_starts_still_stops_it(cfg: ExecConfig) -> None:
    job = fetched("sleep 300")
    execution = Execution(job, cfg, lambda *_: None)
    execution.interrupt()
    assert execution.run().ending is Ending.INTERRUPTED
    none_left(job.id)


def test_a_job_that_ends_cleanly_as_it_is_interrupted_keeps_its_success(
        cfg: ExecConfig) -> None:
    execution = Execution(fetched("true"), cfg, lambda *_: None)
    result = execution.run()
    execution.interrupt()  # too late: harmless
    assert result.succeeded


def test_a_lost_lease_stops_the_job(cfg: ExecConfig) -> None:
    def ship(job: Fetched, chunk: bytes, produced: int) -> None:
        raise LeaseLostError(job.id)

    job = fetched("(sleep 300 &); sleep 300")
    result = Execution(job, cfg, ship).run()
    assert result.ending is Ending.LEASE_LOST
    none_left(job.id)


# -- output -----------------------------------------------------------------------------------

@pytest.mark.parametrize("target", list(LogTarget))
def test_output_goes_to_each_target(
        logs: LogDir, log_dir: Path, plain_control: ProcessControl,
        capsysbinary: pytest.CaptureFixture[bytes], target: LogTarget) -> None:
    cfg = make_cfg(logs, plain_control, target)
    job_id = new_id()
    result = execute(cfg, "echo one; echo two >&2; printf 'no newline'", job_id=job_id)
    assert result.succeeded
    lines = [b"one", b"two", b"no newline"]
    log_file = log_dir / f"{job_id}.log"
    if target is LogTarget.STDOUT:
        assert not log_file.exists()
    else:
        written = log_file.read_bytes()
        header = HEADER.match(written)
        assert header is not None and header.group(1) == job_id.encode()
        assert written[header.end():] == b"one\ntwo\nno newline"
        assert os.stat(log_file).st_mode & 0o777 == 0o600
    out = capsysbinary.readouterr().out
    if target is LogTarget.FILE:
        assert out == b""
    else:
        tag = f"[{job_id}] ".encode()
        assert out.splitlines()[1:] == [tag + line for line in lines]
    assert result.chunk.endswith(b"one\ntwo\nno newline")
    assert result.produced == len(result.chunk)


@pytest.mark.parametrize("target", [LogTarget.FILE, LogTarget.STDOUT])
def test_the_tail_is_capped_and_produced_counts_every_byte(
        logs: LogDir, plain_control: ProcessControl,
        capsysbinary: pytest.CaptureFixture[bytes], target: LogTarget) -> None:
    cfg = make_cfg(logs, plain_control, target, cap=4096)
    result = execute(cfg, "head -c 100000 /dev/zero | tr '\\0' a; echo; echo last")
    assert result.succeeded
    assert len(result.chunk) == 4096
    assert result.chunk.endswith(b"a\nlast\n")
    assert result.produced > 100000
    capsysbinary.readouterr()


def test_binary_output_is_kept_byte_for_byte(
        logs: LogDir, log_dir: Path, plain_cfg: ExecConfig, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    job_id = new_id()
    result = execute(plain_cfg, f"head -c 300000 /dev/urandom | tee {source}", job_id=job_id)
    assert result.succeeded
    data = source.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode()
    written = (log_dir / f"{job_id}.log").read_bytes()
    header = HEADER.match(written)
    assert header is not None
    assert written[header.end():] == data
    assert result.chunk == data[-4096:]


def test_each_attempt_appends_its_header(plain_cfg: ExecConfig, log_dir: Path) -> None:
    job_id = new_id()
    execute(plain_cfg, "echo first", job_id=job_id)
    second = execute(plain_cfg, "echo second", job_id=job_id)
    written = (log_dir / f"{job_id}.log").read_bytes()
    assert written.count(b"--- attempt") == 2
    assert b"first" not in second.chunk, "only the new run's output is shipped"


@pytest.mark.parametrize("target", [LogTarget.FILE, LogTarget.BOTH])
def test_a_run_that_writes_nothing_leaves_no_log_file(
        logs: LogDir, log_dir: Path, plain_control: ProcessControl,
        capsysbinary: pytest.CaptureFixture[bytes], target: LogTarget) -> None:
    job_id = new_id()
    result = execute(make_cfg(logs, plain_control, target), "true", job_id=job_id)
    assert result.succeeded
    assert not (log_dir / f"{job_id}.log").exists()
    header = HEADER.match(result.chunk)
    assert header is not None and header.end() == len(result.chunk), "the header is shipped"
    assert result.produced == len(result.chunk)
    capsysbinary.readouterr()


def test_a_silent_run_adds_nothing_to_an_earlier_run_s_file(
        plain_cfg: ExecConfig, log_dir: Path) -> None:
    job_id = new_id()
    execute(plain_cfg, "echo first", job_id=job_id)
    execute(plain_cfg, "true", job_id=job_id)
    execute(plain_cfg, "echo third", job_id=job_id)
    written = (log_dir / f"{job_id}.log").read_bytes()
    assert written.count(b"--- attempt") == 2
    assert written.endswith(b"third\n")


def test_a_link_the_job_plants_at_its_own_log_path_is_not_followed(
        plain_cfg: ExecConfig, log_dir: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    # The path was free at the spawn, so the file waits for the first output; the job
    # takes the path first. Its output still reaches the tail, never the link's target.
    outside = tmp_path / "precious.txt"
    outside.write_bytes(b"keep me\n")
    job_id = new_id()
    result = execute(plain_cfg, f"ln -s {outside} {log_dir}/{job_id}.log && echo written",
                     job_id=job_id)
    assert result.succeeded
    assert result.chunk.endswith(b"written\n")
    assert outside.read_bytes() == b"keep me\n"
    assert (log_dir / f"{job_id}.log").is_symlink()
    assert any("is a symbolic link; refusing to follow it" in r.getMessage()
               for r in caplog.records)


def test_a_run_after_a_dlq_retry_says_which_run_it_is(plain_cfg: ExecConfig,
                                                       log_dir: Path) -> None:
    job_id = new_id()
    # attempts restart at 0 on a DLQ or quarantine retry; the lease counts every fetch.
    for lease, attempts in ((1, 1), (2, 1), (3, 2)):
        Execution(Fetched(job_id, lease, "echo ran", None, attempts, "default", ""),
                  plain_cfg, lambda *_: None).run()
    headers = re.findall(rb"^--- (.*) of job \S+ on w-test at \S+ ---$",
                         (log_dir / f"{job_id}.log").read_bytes(), re.MULTILINE)
    assert headers == [b"attempt 1",
                       b"attempt 1 (run 2, after a retry from the DLQ or quarantine)",
                       b"attempt 2 (run 3, after a retry from the DLQ or quarantine)"]
