"""The README's ``sh docker`` blocks, run as written from the repository root against the
stack the stage started (its COMPOSE_PROJECT_NAME and DOCKER_HOST are in the environment).

One liberty: a ``docker compose up`` line gets the stage's services appended
(QUEUECTL_STAGE_SERVICES), because the Grafana image cannot be had on the CI machine.
Runs after test_compose_smoke.py (file order): the README rebuilds the images without
the stage's build arguments, which recreates the stack's containers.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.readme import blocks

ROOT = Path(__file__).resolve().parents[2]
DOCKER_BLOCKS = [(line, body) for line, kind, body in blocks() if kind == "sh docker"]
UP = re.compile(r"^(\s*docker compose\b.*\bup\b.*)$", re.MULTILINE)


def as_staged(body: str) -> str:
    services = os.environ["QUEUECTL_STAGE_SERVICES"]
    return UP.sub(lambda m: f"{m.group(1)} {services}", body)


def test_the_readme_has_docker_blocks() -> None:
    assert len(DOCKER_BLOCKS) >= 3, DOCKER_BLOCKS


@pytest.mark.parametrize(("line", "body"), DOCKER_BLOCKS,
                         ids=[f"line{line}" for line, _ in DOCKER_BLOCKS])
def test_the_docker_block_runs_as_written(line: int, body: str) -> None:
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", as_staged(body)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    output = done.stdout + done.stderr
    print(f"[readme line {line}]\n{output.strip()}")
    assert done.returncode == 0, f"README line {line} exited {done.returncode}:\n{output}"
    assert "Traceback" not in output, output
