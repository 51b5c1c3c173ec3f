"""Runs one job in a process of its own, for conditions a test cannot create in pytest's.

    python -m tests.worker.runner '{"log_dir": ..., "command": ..., "result": ...}'

Used where the condition must be real but would harm or cannot apply to the
test process: a non-root user (``uid``: for them ``chmod 0500`` means read-only), a
private mount namespace with a full or read-only tmpfs, lowered rlimits. Writes
the RunResult as JSON to ``result`` (stdout may carry the job's output).
"""

from __future__ import annotations

import base64
import json
import os
import resource
import sys
from pathlib import Path

from queuectl.core.settings import JobCgroup, LogTarget
from queuectl.worker.executor import ExecConfig, Execution
from queuectl.worker.logdir import LogDir
from queuectl.worker.remains import ProcessControl

from .helpers import fetched, no_ship


def main() -> None:
    spec = json.loads(sys.argv[1])
    if "uid" in spec:
        # Started as root (the interpreter may live where others cannot read), everything
        # imported; from here on this process is an ordinary user.
        os.setgroups([])
        os.setgid(spec["uid"])
        os.setuid(spec["uid"])
    logs = LogDir(Path(spec["log_dir"]))
    logs.open()
    control = ProcessControl(0.5)
    control.setup(JobCgroup.OFF)
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    if spec.get("nofile"):
        # Every descriptor we may have is taken: the next open() fails with EMFILE.
        used = len(os.listdir("/proc/self/fd")) - 1  # less listdir's own
        resource.setrlimit(resource.RLIMIT_NOFILE, (used, nofile[1]))
    if spec.get("nproc"):
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # no fork (not for root)
    cfg = ExecConfig("w-runner", logs, LogTarget(spec.get("target", "file")), 4096, control,
                     {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    job = fetched(spec["command"], job_id=spec.get("job_id"))
    result = Execution(job, cfg, no_ship).run()
    resource.setrlimit(resource.RLIMIT_NOFILE, nofile)
    log_file = Path(spec["log_dir"]) / f"{job.id}.log"
    out = {"ending": result.ending.value, "exit_code": result.exit_code,
           "error": result.error, "chunk": base64.b64encode(result.chunk).decode(),
           "produced": result.produced,
           "log_size": log_file.stat().st_size if log_file.is_file() else None}
    Path(spec["result"]).write_text(json.dumps(out))
    logs.close()


if __name__ == "__main__":
    main()
