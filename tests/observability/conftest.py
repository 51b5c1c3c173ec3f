"""Fixtures of the observability tier: the Prometheus binaries (Debian's ``prometheus``)."""

from __future__ import annotations

import os
import shutil

import pytest


def require_binary(name: str) -> str:
    """The path of ``name``; a missing binary fails the test in CI and skips it elsewhere."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = (f"{name} is not installed: apt-get install --no-install-recommends prometheus "
               "(.ci/run does this)")
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_binary("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return require_binary("prometheus")
