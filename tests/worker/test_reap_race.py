"""Reaping orphans must never steal a job's exit status from its Popen.

If a reaper collected a job's main process (a ``waitpid(-1)``, or a reap of a
pid that just exited before Popen registered it), Popen would see ECHILD and
report 0: a failing job recorded as a success. Here many fast failing jobs run
at once, on several threads and on the main thread, next to jobs that leave
orphans behind and a thread that reaps below every thread as fast as it can;
every exit code must come out exactly.
"""

from __future__ import annotations

import threading

from queuectl.worker.executor import ExecConfig
from tests.integration.procs import eventually

from .helpers import execute, zombie_children

# (command, exit code): fast failures, and orphan makers whose children die on their own.
JOBS = [
    ("false", 1),
    ("exit 3", 3),
    ("true", 0),
    ("(sleep 0.01 &); exit 5", 5),
    ("sh -c 'exit 9' & wait $!; exit $?", 9),
    ("(true &); exit 7", 7),
]
THREADS = 6
ROUNDS = 25


def test_every_exit_code_survives_concurrent_orphan_reaping(plain_cfg: ExecConfig) -> None:
    cfg = plain_cfg
    done = threading.Event()
    wrong: list[str] = []
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            while not done.is_set():
                cfg.procs.children.sweep(everywhere=True)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    def jobs(offset: int) -> None:
        try:
            for n in range(ROUNDS):
                command, code = JOBS[(n + offset) % len(JOBS)]
                result = execute(cfg, command)
                if result.exit_code != code:
                    wrong.append(f"{command!r}: exit {result.exit_code}, expected {code}")
        except BaseException as exc:
            errors.append(exc)

    reapers = [threading.Thread(target=hammer) for _ in range(2)]
    workers = [threading.Thread(target=jobs, args=(i,)) for i in range(THREADS)]
    for thread in reapers + workers:
        thread.start()
    jobs(THREADS)  # the main thread too: its children are listed with adopted orphans
    for thread in workers:
        thread.join(120)
    done.set()
    for thread in reapers:
        thread.join(10)

    assert not errors, errors
    assert not wrong, f"{len(wrong)} wrong exit code(s), e.g. {wrong[:5]}"
    total = (THREADS + 1) * ROUNDS
    print(f"{total} jobs, every exit code right")

    def reaped() -> bool:
        cfg.procs.reap()
        return not zombie_children()

    eventually(reaped, what="every orphan reaped")
