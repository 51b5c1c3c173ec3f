"""The distribution: a wheel and an editable install each import every namespace portion,
ship the Lua scripts as package data and install the three console scripts.

Each install goes into a fresh venv. Its dependencies (redis, pydantic, typer,
hatchling, ...) are the ones next to the test runner, exposed through a
directory of symlinks that leaves out every QueueCTL file, so that the only
``queuectl`` the venv can import is the one installed into it; a control
import before the install proves that.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from queuectl.core.lua import script_names

REPO = Path(__file__).resolve().parents[1]
PORTIONS = ["core", "worker", "scheduler", "cli"]
# queuectl.client: the documented import path, a module of the core portion.
MODULES = ["queuectl.client", "queuectl.core.client", "queuectl.worker.main",
           "queuectl.scheduler.main", "queuectl.cli.main"]
CONSOLE_SCRIPTS = ["queuectl", "queuectl-worker", "queuectl-scheduler"]

# Run by the venv's own interpreter: what it imports, and from where.
PROBE = r"""
import importlib, json, sys

modules = {name: importlib.import_module(name).__file__ for name in sys.argv[1:]}
import queuectl.core
from queuectl.core.lua import script_names, script_source

print(json.dumps({
    "core": queuectl.core.__file__,
    "namespace": list(queuectl.__path__),
    "modules": modules,
    # script_source inlines scripts/lib/*.lua: those files must be in the wheel too.
    "lua": {name: len(script_source(name)) for name in script_names()},
    "prefix": sys.prefix,
}))
"""

pytestmark = pytest.mark.slow


def run(args: list[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME") and not k.startswith("QUEUECTL_")}
    env.update(kwargs.pop("env", {}))
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env,
                            check=False, timeout=110, **kwargs)
    # Shown by pytest only when the test fails.
    print(f"$ {' '.join(map(str, args))}  -> {result.returncode}\n{result.stdout}{result.stderr}")
    return result


def dependency_dir(tmp: Path) -> Path:
    """Symlinks to every top-level entry of the runner's site-packages except QueueCTL's."""
    deps = tmp / "deps"
    deps.mkdir()
    paths = sysconfig.get_paths()
    for site in dict.fromkeys([paths["purelib"], paths["platlib"]]):
        for entry in Path(site).iterdir():
            name = entry.name.lower()
            if (name.startswith(("queuectl", "_queuectl", "__editable__"))
                    or name.endswith(".pth") or (deps / entry.name).exists()):
                continue
            (deps / entry.name).symlink_to(entry)
    return deps


@pytest.fixture(scope="module")
def deps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return dependency_dir(tmp_path_factory.mktemp("deps"))


class Venv:
    def __init__(self, root: Path, deps: Path) -> None:
        self.root = root
        # --system-site-packages names the *base* interpreter's packages when the tests
        # run from a venv, so the runner's own dependencies are added with a .pth.
        created = run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                       root])
        assert created.returncode == 0, created.stderr
        self.python = root / "bin" / "python"
        site = run([self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
        self.site = Path(site.stdout.strip())
        assert self.site.is_relative_to(root)
        (self.site / "_test_dependencies.pth").write_text(f"{deps}\n")

    def pip_install(self, *args: str | Path) -> None:
        # The runner's pip, installing into this venv (pip >= 22.3).
        result = run([sys.executable, "-m", "pip", "--python", self.python, "install",
                      "--no-deps", "--no-index", "--disable-pip-version-check", *args],
                     cwd=self.root)
        assert result.returncode == 0, result.stderr

    def probe(self) -> dict[str, Any]:
        result = run([self.python, "-c", PROBE, *MODULES], cwd=self.root)
        assert result.returncode == 0, result.stderr
        out: dict[str, Any] = json.loads(result.stdout)
        print(f"{self.root.name}: queuectl.core from {out['core']}")
        return out

    def can_import_queuectl(self) -> bool:
        return run([self.python, "-c", "import queuectl.core"], cwd=self.root).returncode == 0

    def check_console_scripts(self) -> None:
        for name in CONSOLE_SCRIPTS:
            script = self.root / "bin" / name
            assert script.is_file(), f"{name} is not installed"
            assert os.access(script, os.X_OK)
            assert script.read_text().splitlines()[0] == f"#!{self.python}"
        # The entry points run: a bad environment is one line and exit 3, before any Redis.
        for name in ("queuectl-scheduler", "queuectl-worker"):
            bad = run([self.root / "bin" / name], env={"QUEUECTL_SCHEDULER_BATCH": "lots"},
                      cwd=self.root)
            assert bad.returncode == 3, bad.stderr
            assert bad.stderr.strip().splitlines() == [
                f"{name}: error: invalid environment QUEUECTL_SCHEDULER_BATCH: "
                "must be a whole number"
            ]
        helped = run([self.root / "bin" / "queuectl", "--help"], cwd=self.root)
        assert helped.returncode == 0, helped.stderr
        assert "scheduler" in helped.stdout


def check_probe(out: dict[str, Any], source_of: dict[str, Path]) -> None:
    assert set(out["modules"]) == set(MODULES)
    for module, path in out["modules"].items():
        if module == "queuectl.client":  # a module of the core portion, beside queuectl/core/
            where = source_of["core"].parent / "client.py"
        else:
            where = source_of[module.split(".")[1]]
        assert Path(path).is_relative_to(where), (module, path)
    assert set(out["lua"]) == set(script_names())
    assert all(size > 100 for size in out["lua"].values()), out["lua"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("dist")
    built = run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", out, REPO],
                cwd=out)
    assert built.returncode == 0, built.stderr
    wheels = list(out.glob("queuectl-*.whl"))
    assert len(wheels) == 1, wheels
    yield wheels[0]


def test_wheel_contents(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = zf.read(entry_points).decode()
    for name in script_names():
        assert f"queuectl/core/scripts/{name}.lua" in names
    for portion in PORTIONS:
        assert f"queuectl/{portion}/__init__.py" in names
        assert f"queuectl/{portion}/py.typed" in names
    assert "queuectl/__init__.py" not in names  # PEP 420: portions share the namespace
    assert not [n for n in names if n.startswith(("services/", "tests/"))]
    for line in ("queuectl = queuectl.cli.main:main",
                 "queuectl-worker = queuectl.worker.main:main",
                 "queuectl-scheduler = queuectl.scheduler.main:main"):
        assert line in scripts


def test_wheel_install_imports_every_portion(wheel: Path, deps: Path, tmp_path: Path) -> None:
    venv = Venv(tmp_path / "wheel-venv", deps)
    assert not venv.can_import_queuectl()  # control: nothing leaks in from the runner
    venv.pip_install(wheel)
    out = venv.probe()
    assert Path(out["prefix"]) == venv.root
    installed = venv.site / "queuectl"
    check_probe(out, {portion: installed / portion for portion in PORTIONS})
    assert out["namespace"] == [str(installed)]
    assert not Path(out["core"]).is_relative_to(REPO)
    venv.check_console_scripts()


def test_editable_install_imports_every_portion(deps: Path, tmp_path: Path) -> None:
    venv = Venv(tmp_path / "editable-venv", deps)
    assert not venv.can_import_queuectl()
    venv.pip_install("--no-build-isolation", "-e", REPO)
    out = venv.probe()
    assert Path(out["prefix"]) == venv.root
    sources = {portion: REPO / "services" / portion / "queuectl" / portion
               for portion in PORTIONS}
    check_probe(out, sources)
    # Every portion's root is on the path (hatch dev-mode-dirs), not only the first one.
    assert sorted(out["namespace"]) == sorted(
        str(REPO / "services" / portion / "queuectl") for portion in PORTIONS
    )
    # ...and it was this venv's install that put them there.
    pth = "".join(p.read_text() for p in venv.site.glob("*.pth")
                  if p.name != "_test_dependencies.pth")
    for portion in PORTIONS:
        assert str(REPO / "services" / portion) in pth
    venv.check_console_scripts()
