"""The README's ``sh helm`` blocks hold for the chart: each ``helm install`` renders with
the values it sets, and each ``kubectl exec`` names a Deployment that install creates and
a queuectl command that exists. There is no cluster here; this is what can be proven."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.deploy.chart import find, render
from tests.readme import blocks, commands

QUEUECTL = str(Path(sys.executable).parent / "queuectl")
HELM_BLOCKS = [body for _, kind, body in blocks() if kind == "sh helm"]


def set_values(pairs: list[str]) -> dict[str, Any]:
    """``--set a.b=1,c=x`` as Helm reads it: dotted paths, true/false/integers typed."""
    values: dict[str, Any] = {}
    for pair in ",".join(pairs).split(","):
        path, _, raw = pair.partition("=")
        value: Any = {"true": True, "false": False}.get(raw, raw)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        node = values
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return values


def installs(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """(release, values) of ``helm install RELEASE deploy/helm/queuectl [--set ...]``."""
    assert argv[:2] == ["helm", "install"], argv
    release, chart, *rest = argv[2:]
    assert chart == "deploy/helm/queuectl", chart
    pairs = [rest[i + 1] for i, arg in enumerate(rest) if arg == "--set"]
    return release, set_values(pairs)


def test_the_readme_shows_how_to_install_the_chart() -> None:
    assert HELM_BLOCKS, "no sh helm block in the README"
    assert any(line.startswith("helm install ") for body in HELM_BLOCKS
               for line in commands(body))


def test_each_helm_block_holds_for_the_chart() -> None:
    # Blocks build on each other as a reader follows them: install first, then exec.
    deployments: set[str] = set()
    for line in (line for body in HELM_BLOCKS for line in commands(body)):
        argv = shlex.split(line)
        if argv[0] == "helm":
            release, values = installs(argv)
            docs = render(values, name=release)
            deployments |= {d["metadata"]["name"] for d in find(docs, "Deployment")}
            continue
        assert argv[:2] == ["kubectl", "exec"], line
        target, separator, *command = argv[2:]
        assert separator == "--" and command[0] == "queuectl", line
        assert target.removeprefix("deploy/") in deployments, (target, sorted(deployments))
        # The subcommand exists: its --help (the words before any option or --) answers.
        words = [w for w in command[1:] if not w.startswith("-")][:2]
        for depth in (2, 1):
            proc = subprocess.run([QUEUECTL, *words[:depth], "--help"],
                                  capture_output=True, text=True, check=False)
            if proc.returncode == 0:
                break
        assert proc.returncode == 0, (line, proc.stderr)
