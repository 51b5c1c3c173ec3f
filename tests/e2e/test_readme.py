"""Every code block in the README runs as written.

Fenced blocks are ``sh`` (run here by bash, stopping at the first failing
command), ``python`` (run here by the venv's Python), ``text`` (diagrams, synopses,
output: not code), or one of the kinds proven elsewhere that tests/readme.py lists
(``sh helm``, ``sh docker``). A block without one of those labels fails the test,
so a new block must say what it is. Each block runs against a real Redis under a
key prefix of its own, from a scratch directory that holds ``scripts``,
``benchmarks`` and ``.venv`` as in a clone, with a worker and a scheduler running
beside it (the README's own set-up); what it leaves running is stopped afterwards.

``scripts/test.sh`` and ``scripts/test-containers.sh`` are not run here: the first is
this test suite, the second the container stage; ``.ci/run`` runs both, which this
test checks instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.procs import Procs
from tests.readme import FENCE, KINDS, README, REPO, blocks

RUN_BY_CI = "scripts/test.sh"
# The container stage: CI runs it after the suite (it needs a Docker engine, which the
# suite must not see); it runs the README's ``sh docker`` blocks itself.
STAGE_BY_CI = "scripts/test-containers.sh"


CODE = [(line, kind, body) for line, kind, body in blocks() if kind in ("sh", "python")]


def test_every_block_says_what_it_is() -> None:
    kinds = {kind for _, kind, _ in blocks()}
    assert kinds <= KINDS, kinds
    assert len(CODE) >= 6


def test_no_stray_markup_outside_the_blocks() -> None:
    """Comments open and close, and headings are plain: a merge that pasted half of an
    HTML comment into the text shows up here."""
    prose = FENCE.sub("", README.read_text())
    assert prose.count("<!--") == prose.count("-->")
    for heading in re.findall(r"^#+ .*$", prose, re.MULTILINE):
        assert '"' not in heading and heading.count("`") % 2 == 0, heading


def test_the_test_command_is_what_ci_runs() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    for command in (RUN_BY_CI, STAGE_BY_CI):
        # Run as written: alone on its line, with its exit status kept (`|| suite=$?`), or
        # in the background with its output kept (`>"$log" 2>&1 &`).
        assert re.search(rf"^(exec )?{re.escape(command)}( \|\| \w+=\$\?| >\"\$\w+\" 2>&1 &)?$",
                         ci, re.MULTILINE), command
        assert any(command in body for _, kind, body in CODE if kind == "sh"), command


@pytest.fixture
def scratch() -> Iterator[Path]:
    # Short: the embedded Redis's socket path must fit in 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="qr"))
    (path / "home").mkdir()
    for name in ("scripts", "benchmarks", ".venv"):
        (path / name).symlink_to(REPO / name)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def runnable(body: str) -> str:
    """The block as bash runs it: the suite and stage lines are CI's (see the module docstring)."""
    return "\n".join(line for line in body.splitlines()
                     if not line.strip().startswith((RUN_BY_CI, STAGE_BY_CI)))


# A block that holds only CI's own commands has nothing left to run here.
RUN_HERE = [(line, kind, body) for line, kind, body in CODE if runnable(body).strip()]


@pytest.mark.parametrize(("line", "kind", "body"), RUN_HERE,
                         ids=[f"line{line}-{kind}" for line, kind, _ in RUN_HERE])
def test_the_block_runs_as_written(line: int, kind: str, body: str, scratch: Path,
                                   env: dict[str, str]) -> None:
    run_env = {**env, "HOME": str(scratch / "home"),
               "QUEUECTL_KEY_PREFIX": f"qr{uuid.uuid4().hex[:8]}",
               "QUEUECTL_DATA_DIR": str(scratch / "data"),
               "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    procs = Procs(run_env, scratch / "procs")
    procs.worker()
    procs.scheduler()
    argv = ["bash", "-euo", "pipefail", "-c", runnable(body)] if kind == "sh" else \
        [sys.executable, "-c", body]
    proc = subprocess.Popen(argv, cwd=scratch, env=run_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=300)
    finally:
        # Whatever the block started in the background ends with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        procs.cleanup()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"README line {line} ({kind}) exited {proc.returncode}:\n{text}"
    assert "Traceback" not in text, text
