"""The CLI as the CLI image installs it: without the worker and scheduler portions.

`queuectl worker start` and `queuectl scheduler` are then not offered (cli/app.py asks
find_spec), and every other command still answers. The installed portions are arranged
on sys.path by hand: only core and cli, as in the image.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services"

# Run in a fresh interpreter: drop the editable install's portions from sys.path and put
# back core and cli only; then run the command line given in argv, or with --walk print
# every command's --help exit code and output (JSON).
PROGRAM = """
import json, os, sys
root, tree = sys.argv[1], sys.argv[2]
sys.path[:] = [p for p in sys.path if not p.startswith(os.path.join(root, "services"))]
sys.path.insert(0, tree)
import importlib.util
assert importlib.util.find_spec("queuectl.worker") is None
assert importlib.util.find_spec("queuectl.scheduler") is None
if sys.argv[3:] != ["--walk"]:
    from queuectl.cli.main import run
    raise SystemExit(run(sys.argv[3:]))
import typer
from typer.testing import CliRunner
from queuectl.cli.app import app
root_cmd = typer.main.get_command(app)
runner = CliRunner()
answers = {}
def walk(cmd, path):
    result = runner.invoke(app, [*path, "--help"])
    answers[" ".join(path)] = [result.exit_code, result.output]
    for name, sub in getattr(cmd, "commands", {}).items():
        walk(sub, [*path, name])
walk(root_cmd, [])
print(json.dumps(answers))
"""


@pytest.fixture
def cli_only_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "site"
    (tree / "queuectl").mkdir(parents=True)
    for portion in ("core", "cli"):
        (tree / "queuectl" / portion).symlink_to(SERVICES / portion / "queuectl" / portion)
    return tree


def run_cli(tree: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PROGRAM, str(ROOT), str(tree), *argv],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


def test_worker_start_and_scheduler_vanish_and_the_rest_still_works(
        cli_only_tree: Path, env: dict[str, str]) -> None:
    walked = run_cli(cli_only_tree, env, "--walk")
    assert walked.returncode == 0, walked.stderr
    helps = json.loads(walked.stdout)
    assert "scheduler" not in helps and "worker start" not in helps
    assert "scheduler" not in helps[""][1].split("Commands:")[1]
    assert "start" not in helps["worker"][1]  # neither a command nor in the example
    for command, (code, output) in helps.items():
        assert code == 0, f"queuectl {command} --help: {output}"
    # Every command the full install offers, minus the two, is still there.
    assert {"worker stop", "worker list", "status", "list", "show", "logs", "wait", "cancel",
            "doctor", "acl", "config set", "quarantine list", "redis status"} <= set(helps)

    enqueued = run_cli(cli_only_tree, env, "enqueue", "--id", "layout1", "--", "echo hi")
    assert enqueued.returncode == 0, enqueued.stderr
    shown = run_cli(cli_only_tree, env, "show", "layout1", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["state"] == "pending"
    listed = run_cli(cli_only_tree, env, "worker", "list")
    assert listed.returncode == 0, listed.stderr
    for gone in (["worker", "start"], ["scheduler"]):
        refused = run_cli(cli_only_tree, env, *gone)
        assert refused.returncode == 2, refused  # a usage error: no such command
        assert gone[-1] in refused.stderr and "Traceback" not in refused.stderr


def test_with_every_portion_both_commands_are_offered(env: dict[str, str]) -> None:
    queuectl = str(Path(sys.executable).parent / "queuectl")
    top = subprocess.run([queuectl, "--help"], capture_output=True, text=True, env=env,
                         timeout=60, check=False)
    assert "scheduler" in top.stdout.split("Commands:")[1]
    worker = subprocess.run([queuectl, "worker", "--help"], capture_output=True, text=True,
                            env=env, timeout=60, check=False)
    assert "start" in worker.stdout.split("Commands:")[1]
