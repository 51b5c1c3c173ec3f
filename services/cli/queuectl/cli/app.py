"""The command tree: which function answers which ``queuectl`` subcommand, with an example
of each (every command's help ends with one; tests/e2e/test_help.py holds us to it)."""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

from queuectl.cli import admin, care, completion, jobs, status
from queuectl.cli import enqueue as enqueue_command
from queuectl.cli.command import Command
from queuectl.core.entrypoint import version_line
from queuectl.core.policy import POLICY_KEYS

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


def _typer(help_text: str, *examples: str, epilog: str | None = None) -> typer.Typer:
    # Plain Click help and errors: boxed rich panels and pretty tracebacks are not for a CLI
    # whose errors must stay one line. Completion is ours (queuectl.cli.completion): Typer's
    # own options guess the shell instead of being told it.
    return typer.Typer(
        help=with_examples(help_text, *examples), epilog=epilog, no_args_is_help=True,
        add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def _add(group: typer.Typer, name: str, function: Callable[..., Any], *examples: str,
         cls: type[Command] = Command, text: str | None = None) -> None:
    """Register ``function`` as ``name``: its docstring (or ``text``) plus the examples."""
    help_text = with_examples(text or inspect.getdoc(function) or "", *examples)
    group.command(name, cls=cls, help=help_text)(function)


def installed(portion: str) -> bool:
    """Whether a service portion (``queuectl.worker``) is installed, without importing it:
    the CLI image ships without the worker and scheduler, and offers no command that
    needs them."""
    return importlib.util.find_spec(portion) is not None


def _version(value: bool) -> None:
    if value:
        print(version_line("queuectl"))
        raise typer.Exit(0)


app = _typer("QueueCTL: a Redis-backed queue of shell commands.",
             "queuectl enqueue -- 'echo hello'", "queuectl status",
             "source <(queuectl --show-completion bash)", epilog=EPILOG)

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


_add(app, "enqueue", enqueue_command.enqueue, *enqueue_command.EXAMPLES,
     cls=enqueue_command.EnqueueCommand, text=enqueue_command.HELP)
_add(app, "status", status.status, "queuectl status --watch --interval 5")
_add(app, "list", jobs.list_jobs, "queuectl list --state dead --queue mail --limit 20")
_add(app, "show", jobs.show, "queuectl show job1 --json")
_add(app, "logs", jobs.logs, "queuectl logs job1 --follow --timeout 10m")
_add(app, "wait", jobs.wait, "queuectl wait job1 job2 --timeout 5m")
_add(app, "cancel", jobs.cancel, "queuectl cancel job1")
if installed("queuectl.scheduler"):
    _add(app, "scheduler", admin.scheduler, "queuectl scheduler")
_add(app, "doctor", care.doctor, "queuectl doctor --repair")
_add(app, "acl", care.acl, "queuectl acl worker --user queuectl-worker")

dlq_app = _typer("The dead letter queue: jobs that exhausted their retries.",
                 "queuectl dlq retry --all")
_add(dlq_app, "list", admin.dlq_list, "queuectl dlq list --limit 20")
_add(dlq_app, "retry", admin.dlq_retry, "queuectl dlq retry job1", "queuectl dlq retry --all")
_add(dlq_app, "purge", admin.dlq_purge, "queuectl dlq purge --yes")
app.add_typer(dlq_app, name="dlq")

config_app = _typer("Runtime policy kept in Redis: retries, backoff, timeouts, retention.\n\n"
                    "Keys: " + ", ".join(POLICY_KEYS) + ".", "queuectl config set backoff-base 5")
_add(config_app, "list", admin.config_list, "queuectl config list")
_add(config_app, "get", admin.config_get, "queuectl config get max-retries")
_add(config_app, "set", admin.config_set, "queuectl config set max-retries 5",
     "queuectl config set job-timeout 10m")
_add(config_app, "unset", admin.config_unset, "queuectl config unset max-retries")
app.add_typer(config_app, name="config")

HAS_WORKER = installed("queuectl.worker")
worker_app = _typer("Run, stop and list workers.",
                    "queuectl worker start --count 8" if HAS_WORKER else "queuectl worker list")
if HAS_WORKER:
    _add(worker_app, "start", admin.worker_start,
         "queuectl worker start --count 8 --queues high,default")
_add(worker_app, "stop", admin.worker_stop, "queuectl worker stop --all")
_add(worker_app, "list", status.worker_list, "queuectl worker list --json")
app.add_typer(worker_app, name="worker")

quarantine_app = _typer("Jobs set aside because their record or a key they need is unusable.",
                        "queuectl quarantine list")
_add(quarantine_app, "list", care.quarantine_list, "queuectl quarantine list --limit 20")
_add(quarantine_app, "retry", care.quarantine_retry, "queuectl quarantine retry job1 job2")
_add(quarantine_app, "purge", care.quarantine_purge, "queuectl quarantine purge --all --yes")
app.add_typer(quarantine_app, name="quarantine")

redis_app = _typer("The embedded Redis used when QUEUECTL_REDIS_URL is unset.",
                   "queuectl redis status")
_add(redis_app, "start", admin.redis_start, "queuectl redis start")
_add(redis_app, "status", admin.redis_status, "queuectl redis status --json")
_add(redis_app, "stop", admin.redis_stop, "queuectl redis stop")
app.add_typer(redis_app, name="redis")
