"""Every command's ``--help`` (the whole Click tree, walked): a one-line purpose, an example
that is a real command line, and no Python types."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator

import pytest
import typer
from typer import _click
from typer.core import TyperGroup

from queuectl.cli.app import app

from .helpers import Cli, assert_ok

ROOT = typer.main.get_command(app)
# What Typer shows when it is left to itself: `ID <str>`, `{ID}`, `<list[str]>`, `<int range>`.
PYTHON_TYPES = re.compile(r"<(?:str|int|float|bool|Path|datetime|list|dict|tuple)\b|list\[|"
                          r"\{[A-Z][A-Z_.|]*\}| range>")
EXAMPLES = re.compile(r"^  Examples?:\n((?:    .+\n)+)", re.MULTILINE)
SHELL_SYNTAX = {"|", "<", ">", "&&", ";", ")"}


def walk(command: _click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every command and group below (and including) ``command``."""
    yield path
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            yield from walk(sub, (*path, name))


PATHS = list(walk(ROOT))


def find(path: tuple[str, ...]) -> _click.Command:
    command = ROOT
    for name in path:
        assert isinstance(command, TyperGroup)
        command = command.commands[name]
    return command


def example_words(line: str) -> list[str]:
    """The words of ``queuectl ...`` in an example line, without comments or pipes."""
    words = [w.removeprefix("<(").removeprefix("$(") for w in shlex.split(line, comments=True)]
    out: list[str] = []
    for word in words[words.index("queuectl") + 1:]:
        if word in SHELL_SYNTAX:
            break
        out.append(word.rstrip(")"))
        if word.endswith(")"):
            break
    return out


def parse_example(words: list[str]) -> tuple[str, ...]:
    """Parse ``words`` as the CLI would (values converted, nothing run); the command path."""
    command, path = ROOT, list[str]()
    while isinstance(command, TyperGroup) and words and not words[0].startswith("-"):
        assert words[0] in command.commands, (path, words)
        path.append(words[0])
        command, words = command.commands[words[0]], words[1:]
    if isinstance(command, TyperGroup):
        # A group's own option, such as `queuectl --show-completion bash`.
        assert words and any(words[0] in param.opts for param in command.params), words
    else:
        command.make_context(" ".join(["queuectl", *path]), words)
    return tuple(path)


def test_the_tree_is_walked_whole() -> None:
    assert {"enqueue", "status", "dlq", "config", "worker", "quarantine", "redis"} <= {
        p[0] for p in PATHS if p}
    assert ("dlq", "purge") in PATHS and ("config", "set") in PATHS
    assert len(PATHS) >= 30


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) or "queuectl" for p in PATHS])
def test_help_has_a_purpose_an_example_and_no_python_types(cli: Cli, env: dict[str, str],
                                                           path: tuple[str, ...]) -> None:
    unreachable = env | {"QUEUECTL_REDIS_URL": "redis://127.0.0.1:1/0"}
    text = assert_ok(cli(*path, "--help", env=unreachable))
    name = " ".join(["queuectl", *path])
    assert text.startswith(f"Usage: {name} "), text

    purpose = (find(path).help or "").split("\n\n", 1)[0]
    assert "\n" not in purpose.strip() and purpose.rstrip().endswith("."), purpose
    assert len(purpose) <= 100, purpose
    assert f"\n  {' '.join(purpose.split()[:4])}" in text

    found = EXAMPLES.search(text)
    assert found, f"no Example: block in {name} --help"
    lines = found.group(1).splitlines()
    for line in lines:
        words = example_words(line)
        example_path = parse_example(words)
        assert example_path[:len(path)] == path, (line, path)

    body = text.replace(found.group(0), "")
    assert not PYTHON_TYPES.search(text), PYTHON_TYPES.findall(text)
    assert "{" not in body, body  # braces only in examples (JSON jobs)


def test_usage_lines_name_arguments_plainly(cli: Cli) -> None:
    usage = {args: assert_ok(cli(*args.split(), "--help")).splitlines()[0]
             for args in ("show", "wait", "config set", "quarantine retry", "enqueue")}
    assert usage == {
        "show": "Usage: queuectl show [OPTIONS] ID",
        "wait": "Usage: queuectl wait [OPTIONS] ID...",
        "config set": "Usage: queuectl config set [OPTIONS] KEY VALUE",
        "quarantine retry": "Usage: queuectl quarantine retry [OPTIONS] [ID...]",
        "enqueue": "Usage: queuectl enqueue [OPTIONS] [JSON|COMMAND...]",
    }
    arguments = assert_ok(cli("config", "set", "--help")).split("Arguments:\n", 1)[1]
    assert arguments.splitlines()[:2] == ["  KEY    Config key, e.g. backoff-base.  [required]",
                                          "  VALUE  New value.  [required]"]
