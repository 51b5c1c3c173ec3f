"""The command tree: which function answers which ``queuectl`` subcommand, with an example
of each (every command's help ends with one; tests/e2e/test_help.py holds us to it).

Each command's module is imported only when that command is looked up (``LazyGroup``):
``queuectl status`` never imports the code of ``enqueue``, ``dlq`` or ``worker start``,
so a command pays at start-up for what it runs, not for the whole tree. ``--help`` of
the root, which lists every command with its one-line purpose, still loads them all.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable, Iterator, MutableMapping
from typing import Annotated, Any

import typer
from typer import _click
from typer.core import TyperGroup

from queuectl.cli import completion
from queuectl.cli.command import Command
from queuectl.core.entrypoint import version_line

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
def _enqueue() -> _click.Command:
    from queuectl.cli import enqueue
    return _leaf("enqueue", enqueue.enqueue, *enqueue.EXAMPLES, cls=enqueue.EnqueueCommand,
                 text=enqueue.HELP)


def _status() -> _click.Command:
    from queuectl.cli import status
    return _leaf("status", status.status, "queuectl status --watch --interval 5")


def _jobs(name: str, function: str, example: str) -> Callable[[], _click.Command]:
    def build() -> _click.Command:
        from queuectl.cli import jobs
        return _leaf(name, getattr(jobs, function), example)
    return build


def _scheduler() -> _click.Command:
    from queuectl.cli import admin
    return _leaf("scheduler", admin.scheduler, "queuectl scheduler")


def _doctor() -> _click.Command:
    from queuectl.cli import care
    return _leaf("doctor", care.doctor, "queuectl doctor --repair")


def _acl() -> _click.Command:
    from queuectl.cli import care
    return _leaf("acl", care.acl, "queuectl acl worker --user queuectl-worker")


def _dlq() -> typer.Typer:
    from queuectl.cli import admin
    group = _typer("The dead letter queue: jobs that exhausted their retries.",
                   "queuectl dlq retry --all")
    _add(group, "list", admin.dlq_list, "queuectl dlq list --limit 20")
    _add(group, "retry", admin.dlq_retry, "queuectl dlq retry job1", "queuectl dlq retry --all")
    _add(group, "purge", admin.dlq_purge, "queuectl dlq purge --yes")
    return group


def _config() -> typer.Typer:
    from queuectl.cli import admin
    from queuectl.core.policy import POLICY_KEYS
    group = _typer("Runtime policy kept in Redis: retries, backoff, timeouts, retention.\n\n"
                   "Keys: " + ", ".join(POLICY_KEYS) + ".", "queuectl config set backoff-base 5")
    _add(group, "list", admin.config_list, "queuectl config list")
    _add(group, "get", admin.config_get, "queuectl config get max-retries")
    _add(group, "set", admin.config_set, "queuectl config set max-retries 5",
         "queuectl config set job-timeout 10m")
    _add(group, "unset", admin.config_unset, "queuectl config unset max-retries")
    return group


def _worker() -> typer.Typer:
    from queuectl.cli import admin, status
    has_worker = installed("queuectl.worker")
    group = _typer("Run, stop and list workers.",
                   "queuectl worker start --count 8" if has_worker else "queuectl worker list")
    if has_worker:
        _add(group, "start", admin.worker_start,
             "queuectl worker start --count 8 --queues high,default")
    _add(group, "stop", admin.worker_stop, "queuectl worker stop --all")
    _add(group, "list", status.worker_list, "queuectl worker list --json")
    return group


def _quarantine() -> typer.Typer:
    from queuectl.cli import care
    group = _typer("Jobs set aside because their record or a key they need is unusable.",
                   "queuectl quarantine list")
    _add(group, "list", care.quarantine_list, "queuectl quarantine list --limit 20")
    _add(group, "retry", care.quarantine_retry, "queuectl quarantine retry job1 job2")
    _add(group, "purge", care.quarantine_purge, "queuectl quarantine purge --all --yes")
    return group


def _redis() -> typer.Typer:
    from queuectl.cli import admin
    group = _typer("The embedded Redis used when QUEUECTL_REDIS_URL is unset.",
                   "queuectl redis status")
    _add(group, "start", admin.redis_start, "queuectl redis start")
    _add(group, "status", admin.redis_status, "queuectl redis status --json")
    _add(group, "stop", admin.redis_stop, "queuectl redis stop")
    return group


def _group(build: Callable[[], typer.Typer]) -> Callable[[], _click.Command]:
    return lambda: typer.main.get_command(build())


# In the order help lists them.
COMMANDS: dict[str, Callable[[], _click.Command]] = {
    "enqueue": _enqueue,
    "status": _status,
    "list": _jobs("list", "list_jobs", "queuectl list --state dead --queue mail --limit 20"),
    "show": _jobs("show", "show", "queuectl show job1 --json"),
    "logs": _jobs("logs", "logs", "queuectl logs job1 --follow --timeout 10m"),
    "wait": _jobs("wait", "wait", "queuectl wait job1 job2 --timeout 5m"),
    "cancel": _jobs("cancel", "cancel", "queuectl cancel job1"),
    **({"scheduler": _scheduler} if installed("queuectl.scheduler") else {}),
    "doctor": _doctor,
    "acl": _acl,
    "dlq": _group(_dlq),
    "config": _group(_config),
    "worker": _group(_worker),
    "quarantine": _group(_quarantine),
    "redis": _group(_redis),
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
