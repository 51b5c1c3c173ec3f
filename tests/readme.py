"""The README's fenced blocks, for the tests that run or check them.

A block's info string says who proves it: ``sh`` and ``python`` run in
tests/e2e/test_readme.py; ``sh helm`` (``helm install`` and ``kubectl exec`` lines,
for a cluster this machine has not got) is rendered through Helm's library by
tests/deploy/test_helm_readme.py; ``sh docker`` runs in the container stage
(scripts/test-containers.sh); ``text`` is not code.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
KINDS = frozenset({"sh", "python", "text", "sh helm", "sh docker"})


def blocks(path: Path = README) -> list[tuple[int, str, str]]:
    """(first line number, info string, body) of every fenced block."""
    text = path.read_text()
    return [(text.count("\n", 0, m.start()) + 1, m.group(1).strip(), m.group(2))
            for m in FENCE.finditer(text)]


def commands(body: str) -> list[str]:
    """The block's command lines, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", body)
    return [line.strip() for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]
