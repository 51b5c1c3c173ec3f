"""The command tree: which function answers which ``queuectl`` subcommand, with an example
of each (every command's help ends with one; tests/e2e/test_help.py holds us to it).

Each command's module is imported only when that command is looked up (``LazyGroup``):
``queuectl status`` never imports the code of ``enqueue``, ``dlq`` or ``worker start``,
so a command pays at start-up for what it runs, not for the whole tree. ``--help`` of
the root, which lists every command with its one-line purpose, still loads them all.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable, Iterator, MutableMapping
from typing import Annotated, Any

import typer
from typer import _click
from typer.core import TyperGroup

from queuectl.cli import completion
from queuectl.cli.command import Command
from queuectl.core.version import version_line

EPILOG = (
    "Exit codes: 0 ok, 1 a waited job did not complete, 2 usage, 3 invalid input, "
    "4 not found, 5 conflict, 6 Redis unreachable or refused credentials, 7 wait timeout, "
    "8 Redis holds data QueueCTL cannot use (queuectl doctor), 130 interrupted (Ctrl-C) or "
    "cancelled at a prompt. Configuration: QUEUECTL_* environment variables; with "
    "QUEUECTL_REDIS_URL unset an embedded Redis under QUEUECTL_DATA_DIR is used."
)


def with_examples(text: str, *examples: str) -> str:
    """``text`` followed by an Example(s) block that Click prints as written."""
    title = "Example:" if len(examples) == 1 else "Examples:"
    # \b keeps Click from re-wrapping the block into one paragraph.
    return text.rstrip() + f"\n\n\b\n{title}\n" + "\n".join(f"  {e}" for e in examples)


def _typer(help_text: str, *examples: str, epilog: str | None = None,
           cls: type[TyperGroup] | None = None) -> typer.Typer:
    # Plain Click help and errors: boxed rich panels and pretty tracebacks are not for a CLI
    # whose errors must stay one line. Completion is ours (queuectl.cli.completion): Typer's
    # own options guess the shell instead of being told it.
    return typer.Typer(
        help=with_examples(help_text, *examples) if examples else help_text, epilog=epilog,
        no_args_is_help=True, add_completion=False, rich_markup_mode=None,
        pretty_exceptions_enable=False, cls=cls,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def _add(group: typer.Typer, name: str, function: Callable[..., Any], *examples: str,
         cls: type[Command] = Command, text: str | None = None) -> None:
    """Register ``function`` as ``name``: its docstring (or ``text``) plus the examples."""
    help_text = with_examples(text or inspect.getdoc(function) or "", *examples)
    group.command(name, cls=cls, help=help_text)(function)


def _leaf(name: str, function: Callable[..., Any], *examples: str,
          cls: type[Command] = Command, text: str | None = None) -> _click.Command:
    """One command, built as Typer builds it inside a group."""
    single = _typer("")
    _add(single, name, function, *examples, cls=cls, text=text)
    return typer.main.get_command(single)


def installed(portion: str) -> bool:
    """Whether a service portion (``queuectl.worker``) is installed, without importing it:
    the CLI image ships without the worker and scheduler, and offers no command that
    needs them."""
    return importlib.util.find_spec(portion) is not None


def _version(value: bool) -> None:
    if value:
        print(version_line("queuectl"))
        raise typer.Exit(0)


# -- the commands, each built (and its module imported) on first use ------------------------
def _command(module: str, name: str, function: str,
             *examples: str) -> Callable[[], _click.Command]:
    """``name``, answered by ``function`` of ``module`` (imported when first used)."""
    def build() -> _click.Command:
        return _leaf(name, getattr(importlib.import_module(module), function), *examples)
    return build


def _group(module: str, help_text: str, example: str,
           *rows: tuple[str, ...]) -> Callable[[], _click.Command]:
    """A group of commands of ``module``, each row ``(name, function, *examples)``."""
    def build() -> _click.Command:
        functions = importlib.import_module(module)
        group = _typer(help_text, example)
        for name, function, *examples in rows:
            _add(group, name, getattr(functions, function), *examples)
        return typer.main.get_command(group)
    return build


def _enqueue() -> _click.Command:
    from queuectl.cli import enqueue
    return _leaf("enqueue", enqueue.enqueue, *enqueue.EXAMPLES, cls=enqueue.EnqueueCommand,
                 text=enqueue.HELP)


def _config() -> _click.Command:
    from queuectl.core.policy import POLICY_KEYS
    return _group(
        "queuectl.cli.admin", "Runtime policy kept in Redis: retries, backoff, timeouts, "
        "retention.\n\nKeys: " + ", ".join(POLICY_KEYS) + ".", "queuectl config set backoff-base 5",
        ("list", "config_list", "queuectl config list"),
        ("get", "config_get", "queuectl config get max-retries"),
        ("set", "config_set", "queuectl config set max-retries 5",
         "queuectl config set job-timeout 10m"),
        ("unset", "config_unset", "queuectl config unset max-retries"),
    )()


def _worker() -> _click.Command:
    from queuectl.cli import admin, status
    has_worker = installed("queuectl.worker")
    group = _typer("Run, stop and list workers.",
                   "queuectl worker start --count 8" if has_worker else "queuectl worker list")
    if has_worker:
        _add(group, "start", admin.worker_start,
             "queuectl worker start --count 8 --queues high,default",
             "queuectl worker start --processes 2 --count 4")
    _add(group, "stop", admin.worker_stop, "queuectl worker stop --all")
    _add(group, "list", status.worker_list, "queuectl worker list --json")
    return typer.main.get_command(group)


JOBS, ADMIN, CARE = "queuectl.cli.jobs", "queuectl.cli.admin", "queuectl.cli.care"
# In the order help lists them.
COMMANDS: dict[str, Callable[[], _click.Command]] = {
    "enqueue": _enqueue,
    "status": _command("queuectl.cli.status", "status", "status",
                       "queuectl status --watch --interval 5"),
    "list": _command(JOBS, "list", "list_jobs",
                     "queuectl list --state dead --queue mail --limit 20"),
    "show": _command(JOBS, "show", "show", "queuectl show job1 --json"),
    "logs": _command(JOBS, "logs", "logs", "queuectl logs job1 --follow --timeout 10m"),
    "wait": _command(JOBS, "wait", "wait", "queuectl wait job1 job2 --timeout 5m"),
    "cancel": _command(JOBS, "cancel", "cancel", "queuectl cancel job1"),
    **({"scheduler": _command(ADMIN, "scheduler", "scheduler", "queuectl scheduler")}
       if installed("queuectl.scheduler") else {}),
    "doctor": _command(CARE, "doctor", "doctor", "queuectl doctor --repair"),
    "acl": _command(CARE, "acl", "acl", "queuectl acl worker --user queuectl-worker"),
    "dlq": _group(ADMIN, "The dead letter queue: jobs that exhausted their retries.",
                  "queuectl dlq retry --all",
                  ("list", "dlq_list", "queuectl dlq list --limit 20"),
                  ("retry", "dlq_retry", "queuectl dlq retry job1", "queuectl dlq retry --all"),
                  ("purge", "dlq_purge", "queuectl dlq purge --yes")),
    "config": _config,
    "worker": _worker,
    "quarantine": _group(
        CARE, "Jobs set aside because their record or a key they need is unusable.",
        "queuectl quarantine list",
        ("list", "quarantine_list", "queuectl quarantine list --limit 20"),
        ("retry", "quarantine_retry", "queuectl quarantine retry job1 job2"),
        ("purge", "quarantine_purge", "queuectl quarantine purge --all --yes")),
    "redis": _group(ADMIN, "The embedded Redis used when QUEUECTL_REDIS_URL is unset.",
                    "queuectl redis status",
                    ("start", "redis_start", "queuectl redis start"),
                    ("status", "redis_status", "queuectl redis status --json"),
                    ("stop", "redis_stop", "queuectl redis stop")),
}


class _Commands(MutableMapping[str, _click.Command]):
    """The root's subcommands: every name known, each command built on first access."""

    def __init__(self, builders: dict[str, Callable[[], _click.Command]]) -> None:
        self._builders = builders
        self._built: dict[str, _click.Command] = {}

    def __getitem__(self, name: str) -> _click.Command:
        if name not in self._built:
            command = self._builders[name]()
            command.name = name
            self._built[name] = command
        return self._built[name]

    def __setitem__(self, name: str, command: _click.Command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        raise TypeError("the command tree is fixed")

    def __iter__(self) -> Iterator[str]:
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)


class LazyGroup(TyperGroup):
    """The root group, whose subcommands come from ``COMMANDS`` when first looked up."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Commands(COMMANDS)

    def list_commands(self, ctx: _click.Context) -> list[str]:
        """The names alone: Typer's own version builds every command to list them."""
        return list(self.commands)


app = _typer("QueueCTL: a Redis-backed queue of shell commands.",
             "queuectl enqueue -- 'echo hello'", "queuectl status",
             "source <(queuectl --show-completion bash)", epilog=EPILOG, cls=LazyGroup)

@app.callback()
def root(
    _version_flag: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")]
    = False,
    _show: Annotated[completion.Shell | None, typer.Option(
        "--show-completion", metavar="SHELL", callback=completion.show, is_eager=True,
        show_default=False, help="Print the completion script for SHELL (bash, zsh or fish).",
    )] = None,
    _install: Annotated[completion.Shell | None, typer.Option(
        "--install-completion", metavar="SHELL", callback=completion.install_for,
        is_eager=True, show_default=False,
        help="Install completion for SHELL (bash, zsh or fish) in your home directory.",
    )] = None,
) -> None:
    """QueueCTL: a Redis-backed queue of shell commands."""
