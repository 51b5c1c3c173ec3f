"""Entry point of ``queuectl``: settings built once, one command run, every error one line."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import redis
import typer

from queuectl.cli.context import State
from queuectl.cli.render import clean
from queuectl.core.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REDIS,
    EXIT_USAGE,
    QueueCtlError,
)
from queuectl.core.resilience import redis_error_message
from queuectl.core.settings import load_settings

# Not in the table of core/errors.py on purpose: only a bug in QueueCTL ends up here.
EXIT_INTERNAL = 1


def fail(message: str, code: int) -> int:
    """Print ``queuectl: error: <message>`` as one line on stderr and return ``code``."""
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    sys.stderr.write(f"queuectl: error: {clean(line)}\n")
    sys.stderr.flush()
    return code


def report(exc: Exception, state: State | None) -> int:
    """Print the one line an error deserves and return the exit code it maps to."""
    if isinstance(exc, QueueCtlError):
        return fail(str(exc), exc.exit_code)
    if isinstance(exc, typer.TyperException):
        # Click raises this (a UsageError) for a group given no subcommand; its message
        # is the group's help, which is what the user wants to see, on stdout.
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(exc.format_message())
            return EXIT_OK
        return fail(exc.format_message(), EXIT_USAGE)
    if isinstance(exc, redis.RedisError):
        where = state.redis_description() if state is not None else "Redis"
        return fail(redis_error_message(exc, where), EXIT_REDIS)
    if os.environ.get("QUEUECTL_DEBUG"):
        raise exc
    return fail(f"internal error: {type(exc).__name__}: {exc} "
                "(run with QUEUECTL_DEBUG=1 for a traceback)", EXIT_INTERNAL)


def run(argv: Sequence[str]) -> int:
    """Run one command line and return its exit code; nothing escapes as a traceback."""
    from queuectl.cli.app import app

    state: State | None = None
    try:
        state = State(load_settings())
        command = typer.main.get_command(app)
        # standalone_mode=False hands every error back here instead of Click printing
        # a usage block (or rich printing a boxed panel) and exiting by itself.
        result = command.main(args=list(argv), prog_name="queuectl", standalone_mode=False,
                              obj=state)
        return result if isinstance(result, int) else EXIT_OK
    except (KeyboardInterrupt, typer.Abort):
        return EXIT_INTERRUPTED
    except Exception as exc:
        return report(exc, state)
    finally:
        if state is not None:
            state.close()


def main() -> None:
    """Console script ``queuectl``."""
    raise SystemExit(run(sys.argv[1:]))
