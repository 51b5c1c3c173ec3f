"""Shell completion: ``--show-completion SHELL``, ``--install-completion SHELL`` and the
``_QUEUECTL_COMPLETE`` protocol the installed script speaks.

The scripts and the protocol are Typer's (its ``complete_bash`` order); Click's own
order (``bash_complete``) is accepted as well, so either form of the variable works.
Completion never reads settings nor reaches Redis: it only walks the command tree.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum

import typer
from typer._completion_classes import completion_init
from typer._completion_shared import get_completion_script, install

from queuectl.core.errors import InvalidInputError

PROG = "queuectl"
COMPLETE_VAR = "_QUEUECTL_COMPLETE"
_CLICK_ORDER = re.compile(r"(bash|zsh|fish)_(complete|source)")


class Shell(StrEnum):
    """The shells whose completion we print and install."""

    BASH = "bash"
    ZSH = "zsh"
    FISH = "fish"


def prepare() -> None:
    """Register Typer's completion classes and accept Click's order of the instruction."""
    completion_init()
    instruction = os.environ.get(COMPLETE_VAR, "")
    click_order = _CLICK_ORDER.fullmatch(instruction)
    if click_order:
        os.environ[COMPLETE_VAR] = f"{click_order.group(2)}_{click_order.group(1)}"


def script(shell: Shell) -> str:
    """The completion script for ``shell``, to be sourced by it."""
    return get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell.value)


def show(value: Shell | None) -> None:
    """``--show-completion SHELL``: print the script and stop."""
    if value is not None:
        print(script(value))
        raise typer.Exit(0)


def install_for(value: Shell | None) -> None:
    """``--install-completion SHELL``: write the script where the shell loads it, and stop."""
    if value is None:
        return
    try:
        shell, path = install(shell=value.value, prog_name=PROG, complete_var=COMPLETE_VAR)
    except OSError as exc:
        raise InvalidInputError(f"cannot install {value.value} completion: "
                                f"{exc.strerror or exc}: {exc.filename or ''}") from None
    print(f"{shell} completion installed in {path}; it takes effect in new shells")
    raise typer.Exit(0)
