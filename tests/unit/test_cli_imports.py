"""A command imports what it runs, not the whole tree (cli/app.py's LazyGroup).

Start-up time is what a CLI user feels; these tests guard the import set, never a time.
Each runs the CLI in a fresh interpreter (``--help``: no settings, no Redis) and reads
``sys.modules`` afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROGRAM = """
import contextlib, io, json, sys
from queuectl.cli.main import run
with contextlib.redirect_stdout(io.StringIO()):
    code = run(sys.argv[1:])
print(json.dumps([code, sorted(sys.modules)]))
"""
# The modules behind each command group; a command loads its own and none of the others.
COMMAND_MODULES = {"enqueue": {"queuectl.cli.enqueue", "queuectl.cli.bulkfile"},
                   "status": {"queuectl.cli.status"},
                   "list": {"queuectl.cli.jobs"},
                   "dlq": {"queuectl.cli.admin"},
                   "doctor": {"queuectl.cli.care"}}
# Never needed by a CLI command: the services run in their own processes.
SERVICES = {"queuectl.worker", "queuectl.scheduler", "prometheus_client"}


def loaded(*argv: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", PROGRAM, *argv], capture_output=True,
                          text=True, timeout=60, check=True)
    code, modules = json.loads(done.stdout)
    assert code == 0, done.stderr
    return set(modules)


@pytest.mark.parametrize("command", ["enqueue", "status"])
def test_a_command_imports_its_own_module_and_no_other(command: str) -> None:
    modules = loaded(command, "--help")
    assert COMMAND_MODULES[command] <= modules
    others = set().union(*(m for c, m in COMMAND_MODULES.items() if c != command))
    assert not others & modules
    assert not {m for m in modules if any(m == s or m.startswith(f"{s}.") for s in SERVICES)}


# Imported by a command when it reaches Redis, and by nothing that does not.
REDIS_AND_SETTINGS = {"redis", "pydantic", "pydantic_settings", "opentelemetry"}


def test_version_imports_neither_redis_nor_pydantic() -> None:
    modules = loaded("--version")
    assert not {m.partition(".")[0] for m in modules} & REDIS_AND_SETTINGS


def test_the_entry_module_imports_no_library_before_main_runs() -> None:
    # main() turns the collector off (below) before Typer, pydantic and redis-py are
    # imported; a library imported by queuectl.cli.main itself would escape that.
    done = subprocess.run([sys.executable, "-c", "import json, sys, queuectl.cli.main; "
                           "print(json.dumps(sorted(sys.modules)))"],
                          capture_output=True, text=True, timeout=60, check=True)
    tops = {m.partition(".")[0] for m in json.loads(done.stdout)}
    assert not tops & (REDIS_AND_SETTINGS | {"typer", "rich"})


def test_root_help_still_lists_every_command() -> None:
    modules = loaded("--help")
    assert set().union(*COMMAND_MODULES.values()) <= modules


GC_PROGRAM = """
import atexit, gc, json, sys
from queuectl.cli.main import main
# atexit runs after main()'s SystemExit: the collector's state the command left behind.
atexit.register(lambda: sys.stderr.write(json.dumps([gc.isenabled(), gc.get_freeze_count()])))
sys.argv[0] = "queuectl"
main()
"""


def collector_after(*argv: str) -> tuple[bool, int]:
    done = subprocess.run([sys.executable, "-c", GC_PROGRAM, *argv], capture_output=True,
                          text=True, timeout=60, check=True)
    enabled, frozen = json.loads(done.stderr.splitlines()[-1])
    return enabled, frozen


def test_a_command_runs_with_the_collector_on_and_start_up_frozen() -> None:
    # main() turns the collector off for start-up; the command itself must run with it on
    # (status --watch and worker start run for days), what start-up loaded frozen.
    enabled, frozen = collector_after("acl", "worker", "--user", "u")
    assert enabled
    assert frozen > 10_000
    # --version ends before any command runs: the collector was off all along.
    assert collector_after("--version") == (False, 0)
