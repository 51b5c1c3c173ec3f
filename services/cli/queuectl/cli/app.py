"""The command tree: which function answers which ``queuectl`` subcommand."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from queuectl.cli import admin, care, jobs, status
from queuectl.cli.enqueue import HELP as ENQUEUE_HELP
from queuectl.cli.enqueue import EnqueueCommand, enqueue
from queuectl.core.policy import POLICY_KEYS

EPILOG = (
    "Exit codes: 0 ok, 1 a waited job did not complete, 2 usage, 3 invalid input, "
    "4 not found, 5 conflict, 6 Redis unreachable or refused credentials, 7 wait timeout, "
    "8 Redis holds data QueueCTL cannot use (queuectl doctor), 130 interrupted. "
    "Configuration: QUEUECTL_* environment variables; with "
    "QUEUECTL_REDIS_URL unset an embedded Redis under QUEUECTL_DATA_DIR is used."
)


def _typer(help_text: str, *, epilog: str | None = None) -> typer.Typer:
    # Plain Click help and errors: boxed rich panels and pretty tracebacks are not for a CLI
    # whose errors must stay one line.
    return typer.Typer(
        help=help_text, epilog=epilog, no_args_is_help=True, add_completion=False,
        rich_markup_mode=None, pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def _version(value: bool) -> None:
    if value:
        try:
            print(f"queuectl {version('queuectl')}")
        except PackageNotFoundError:
            print("queuectl (not installed)")
        raise typer.Exit(0)


app = _typer("QueueCTL: a Redis-backed queue of shell commands.", epilog=EPILOG)


@app.callback()
def root(
    _version_flag: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")]
    = False,
) -> None:
    """QueueCTL: a Redis-backed queue of shell commands."""


app.command("enqueue", cls=EnqueueCommand, help=ENQUEUE_HELP)(enqueue)
app.command("status")(status.status)
app.command("list")(jobs.list_jobs)
app.command("show")(jobs.show)
app.command("logs")(jobs.logs)
app.command("wait")(jobs.wait)
app.command("cancel")(jobs.cancel)
app.command("scheduler")(admin.scheduler)
app.command("doctor")(care.doctor)
app.command("acl")(care.acl)

dlq_app = _typer("The dead letter queue: jobs that exhausted their retries.")
dlq_app.command("list")(admin.dlq_list)
dlq_app.command("retry")(admin.dlq_retry)
dlq_app.command("purge")(admin.dlq_purge)
app.add_typer(dlq_app, name="dlq")

config_app = _typer("Runtime policy kept in Redis: " + ", ".join(POLICY_KEYS) + ".")
config_app.command("list")(admin.config_list)
config_app.command("get")(admin.config_get)
config_app.command("set")(admin.config_set)
config_app.command("unset")(admin.config_unset)
app.add_typer(config_app, name="config")

worker_app = _typer("Run, stop and list workers.")
worker_app.command("start")(admin.worker_start)
worker_app.command("stop")(admin.worker_stop)
worker_app.command("list")(status.worker_list)
app.add_typer(worker_app, name="worker")

quarantine_app = _typer("Jobs set aside because their record or a key they need is unusable.")
quarantine_app.command("list")(care.quarantine_list)
quarantine_app.command("retry")(care.quarantine_retry)
quarantine_app.command("purge")(care.quarantine_purge)
app.add_typer(quarantine_app, name="quarantine")

redis_app = _typer("The embedded Redis used when QUEUECTL_REDIS_URL is unset.")
redis_app.command("start")(admin.redis_start)
redis_app.command("status")(admin.redis_status)
redis_app.command("stop")(admin.redis_stop)
app.add_typer(redis_app, name="redis")
