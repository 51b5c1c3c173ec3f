"""Runs that cannot be set up or started are classified, never a traceback.

The job's own input (its log path is taken by a symlink, a directory, a FIFO,
a hard link; a command that cannot be exec'd) fails the run: NOT_STARTED. The
worker's host (a full, read-only or vanished disk, no descriptors, no fork) hands
the job back: ENVIRONMENT. Both come with one clear line naming the path and
the errno's text.

Tests run as root, for whom ``chmod 0500`` stops nothing and who can write a
full disk's reserved blocks. So the read-only directory is tested as a real
unprivileged user (``nobody``, via a runner process) and the full and read-only
disks as real tmpfs mounts in a private mount namespace (``unshare -m``, also in
a runner, so no mount outlives the test); each is skipped, with the reason,
where the host does not allow it.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from queuectl.worker.executor import ExecConfig
from queuectl.worker.logdir import LogDir
from queuectl.worker.outcome import Ending
from queuectl.worker.remains import ProcessControl

from .conftest import make_cfg, umask
from .helpers import execute, new_id

ROOT = Path(__file__).resolve().parents[2]


def _not_started(cfg: ExecConfig, job_id: str, *needles: str) -> str:
    result = execute(cfg, "echo ran", job_id=job_id)
    assert result.ending is Ending.NOT_STARTED, result
    assert result.exit_code is None
    assert "\n" not in result.error
    for needle in needles:
        assert needle in result.error, result.error
    return result.error


# -- the job's own log path is in the way ---------------------------------------------------

def test_a_symlink_to_a_file_outside_log_dir_is_not_followed(
        plain_cfg: ExecConfig, log_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "precious.txt"
    outside.write_bytes(b"keep me\n")
    before = outside.stat()
    job_id = new_id()
    (log_dir / f"{job_id}.log").symlink_to(outside)
    _not_started(plain_cfg, job_id, str(log_dir / f"{job_id}.log"), "symbolic link")
    assert outside.read_bytes() == b"keep me\n"
    after = outside.stat()
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)


def test_a_dangling_symlink_creates_nothing_at_its_target(
        plain_cfg: ExecConfig, log_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.log"
    job_id = new_id()
    (log_dir / f"{job_id}.log").symlink_to(target)
    _not_started(plain_cfg, job_id, "symbolic link")
    assert not target.exists()


def test_a_directory_in_the_way(plain_cfg: ExecConfig, log_dir: Path) -> None:
    job_id = new_id()
    (log_dir / f"{job_id}.log").mkdir()
    _not_started(plain_cfg, job_id, str(log_dir / f"{job_id}.log"), "is a directory")


def test_a_fifo_in_the_way_neither_blocks_nor_is_written(
        plain_cfg: ExecConfig, log_dir: Path) -> None:
    job_id = new_id()
    os.mkfifo(log_dir / f"{job_id}.log")
    _not_started(plain_cfg, job_id, "not a regular file")


def test_a_hard_link_to_a_file_elsewhere_is_refused(
        plain_cfg: ExecConfig, log_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "other.txt"
    outside.write_bytes(b"x")
    job_id = new_id()
    os.link(outside, log_dir / f"{job_id}.log")
    _not_started(plain_cfg, job_id, "hard links")
    assert outside.read_bytes() == b"x"


@pytest.mark.parametrize(("command", "needle"), [
    ("echo \0 nul", "invalid command"),
    ("echo " + "x" * 200_000, "command too long"),
])
def test_a_command_that_cannot_be_exec_d(plain_cfg: ExecConfig, command: str,
                                         needle: str) -> None:
    result = execute(plain_cfg, command)
    assert result.ending is Ending.NOT_STARTED
    assert needle in result.error, result.error


# -- LOG_DIR itself ---------------------------------------------------------------------------

def test_log_dir_is_created_0700_and_files_0600(tmp_path: Path,
                                                plain_control: ProcessControl) -> None:
    path = tmp_path / "a" / "logs"
    with umask(0):
        logs = LogDir(path)
        logs.open()
        try:
            job_id = new_id()
            assert execute(make_cfg(logs, plain_control), "echo x", job_id=job_id).succeeded
        finally:
            logs.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert stat.S_IMODE((path / f"{job_id}.log").stat().st_mode) == 0o600


def test_a_loose_log_dir_of_ours_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "logs"
    path.mkdir()
    path.chmod(0o755)
    loose = path / "old.log"
    loose.write_bytes(b"")
    loose.chmod(0o644)
    logs = LogDir(path)
    logs.open()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
        os.close(logs.open_log("old.log"))
        assert stat.S_IMODE(loose.stat().st_mode) == 0o600
    finally:
        logs.close()


def test_only_a_free_path_in_a_usable_log_dir_waits_for_the_first_output(
        logs: LogDir, log_dir: Path) -> None:
    assert logs.fresh("free.log")
    (log_dir / "earlier.log").write_bytes(b"--- attempt 1 ---\n")
    (log_dir / "planted.log").symlink_to(log_dir / "nowhere")
    assert not logs.fresh("earlier.log"), "opened before the spawn, as is"
    assert not logs.fresh("planted.log"), "judged (and refused) before the spawn"


def test_a_deleted_log_dir_is_re_created_before_the_spawn(logs: LogDir, log_dir: Path) -> None:
    shutil.rmtree(log_dir)
    assert not logs.fresh("free.log")


def test_a_vanished_log_dir_is_re_created_once(
        plain_cfg: ExecConfig, log_dir: Path) -> None:
    shutil.rmtree(log_dir)
    job_id = new_id()
    result = execute(plain_cfg, "echo back", job_id=job_id)
    assert result.succeeded
    assert (log_dir / f"{job_id}.log").read_bytes().endswith(b"back\n")
    assert stat.S_IMODE(log_dir.stat().st_mode) == 0o700


def test_a_log_dir_replaced_by_a_file_is_an_environment_failure(
        plain_cfg: ExecConfig, log_dir: Path) -> None:
    # For root, the real stand-in for "cannot write there": a file where the directory was.
    shutil.rmtree(log_dir)
    log_dir.write_bytes(b"not a directory")
    result = execute(plain_cfg, "echo never")
    assert result.ending is Ending.ENVIRONMENT
    assert str(log_dir) in result.error and "cannot be re-created" in result.error
    assert "\n" not in result.error


# -- the host: read-only, full, out of descriptors or processes (runner processes) -------------

@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory an unprivileged runner can reach (pytest's tmp_path is root's, 0700)."""
    path = Path(tempfile.mkdtemp(prefix="queuectl-worker-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_job(spec: dict[str, Any], result_path: Path, *,
            wrap: list[str] | None = None) -> dict[str, Any]:
    args = [sys.executable, "-m", "tests.worker.runner",
            json.dumps({**spec, "result": str(result_path)})]
    proc = subprocess.run([*(wrap or []), *args], cwd=ROOT, capture_output=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    assert b"Traceback" not in proc.stderr, proc.stderr.decode(errors="replace")
    out: dict[str, Any] = json.loads(result_path.read_text())
    out["stdout"] = proc.stdout
    out["chunk"] = base64.b64decode(out["chunk"])
    return out


def nobody() -> int:
    if os.geteuid() != 0:
        pytest.skip("needs root to run the job as another user")
    return pwd.getpwnam("nobody").pw_uid


def test_a_read_only_log_dir_hands_the_job_back(shared_tmp: Path) -> None:
    uid = nobody()
    logs = shared_tmp / "logs"
    logs.mkdir()
    os.chown(logs, uid, -1)
    logs.chmod(0o500)  # read-only for its owner, who is not root
    results = shared_tmp / "results"
    results.mkdir()
    os.chown(results, uid, -1)
    out = run_job({"log_dir": str(logs), "command": "echo never", "uid": uid},
                  results / "r.json")
    assert out["ending"] == "environment"
    assert out["error"] == f"cannot create log file in {logs}: Permission denied"


def test_no_fork_left_hands_the_job_back(shared_tmp: Path) -> None:
    uid = nobody()
    logs = shared_tmp / "logs"
    logs.mkdir(mode=0o700)
    os.chown(logs, uid, -1)
    os.chown(shared_tmp, uid, -1)
    out = run_job({"log_dir": str(logs), "command": "echo never", "nproc": True, "uid": uid},
                  shared_tmp / "r.json")
    assert out["ending"] == "environment"
    assert out["error"] == "cannot start /bin/sh: Resource temporarily unavailable"


def test_no_descriptor_left_hands_the_job_back(tmp_path: Path) -> None:
    out = run_job({"log_dir": str(tmp_path / "logs"), "command": "echo never", "nofile": True,
                   "job_id": "emfile"}, tmp_path / "r.json")
    assert out["ending"] == "environment"
    # The log file waits for the first output (output.py); the pipe is the first descriptor.
    assert out["error"] == "cannot create the output pipe: Too many open files"


def tmpfs(mount: Path, size: str, then: str = "") -> list[str]:
    """A wrapper running the runner with ``mount`` as a fresh tmpfs, in its own namespace."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private tmpfs")
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            f"mount -t tmpfs -o size={size} tmpfs {mount}"],
                           capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.decode().strip()}")
    script = (f'mount -t tmpfs -o size={size},mode=0755 tmpfs "$0" && mkdir -m 700 "$0/logs"'
              f' && {then or ":"} && exec "$@"')
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(mount)]


def test_a_full_disk_at_the_header_hands_the_job_back(tmp_path: Path) -> None:
    mount = tmp_path / "disk"
    mount.mkdir()
    wrap = tmpfs(mount, "64k", f'{{ head -c 1048576 /dev/zero > "{mount}/fill"; true; }}')
    out = run_job({"log_dir": str(mount / "logs"), "command": "echo never",
                   "job_id": "full"}, tmp_path / "r.json", wrap=wrap)
    assert out["ending"] == "environment"
    assert out["error"] == (f"cannot write to log file {mount}/logs/full.log: "
                            "No space left on device")


def test_a_disk_filling_up_mid_run_does_not_stop_the_run(tmp_path: Path) -> None:
    mount = tmp_path / "disk"
    mount.mkdir()
    out = run_job({"log_dir": str(mount / "logs"), "target": "both", "job_id": "mid",
                   "command": "head -c 300000 /dev/zero | tr '\\0' z; echo; echo end"},
                  tmp_path / "r.json", wrap=tmpfs(mount, "64k"))
    assert out["ending"] == "exited" and out["exit_code"] == 0, out["error"]
    assert out["chunk"].endswith(b"z\nend\n"), "the tail is kept"
    assert out["stdout"].endswith(b"[mid] end\n"), "stdout got everything"
    assert out["log_size"] < 300000, "the file copy stopped when the disk was full"


def test_a_read_only_disk_hands_the_job_back(tmp_path: Path) -> None:
    mount = tmp_path / "disk"
    mount.mkdir()
    wrap = tmpfs(mount, "64k", f'mount -o remount,ro "{mount}"')
    out = run_job({"log_dir": str(mount / "logs"), "command": "echo never", "job_id": "ro"},
                  tmp_path / "r.json", wrap=wrap)
    assert out["ending"] == "environment"
    assert out["error"] == f"cannot open log file {mount}/logs/ro.log: Read-only file system"
