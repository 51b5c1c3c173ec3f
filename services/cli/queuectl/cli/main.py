"""Entry point of ``queuectl``: one command run, every error one line, nothing escapes.

Only the standard library and ``core.errors`` are imported here, at the top: ``main()``
turns the garbage collector off before Typer, pydantic and redis-py are imported (see
``main``), and the code below imports them where it needs them.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from queuectl.core.errors import (
    EXIT_DATA,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_REDIS,
    EXIT_USAGE,
    CancelledError,
    QueueCtlError,
)

if TYPE_CHECKING:
    import typer

    from queuectl.cli.context import State

# Not in the table of core/errors.py on purpose: only a bug in QueueCTL ends up here.
EXIT_INTERNAL = 1


def fail(message: str, code: int) -> int:
    """Print ``queuectl: error: <message>`` as one line on stderr and return ``code``."""
    from queuectl.cli.render import clean

    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    sys.stderr.write(f"queuectl: error: {clean(line)}\n")
    sys.stderr.flush()
    return code


def bad_value(exc: typer.BadParameter) -> str:
    """``invalid value for --limit: must be at least 0 (got -1)``, in QueueCTL's words."""
    from pydantic import ValidationError

    from queuectl.cli.command import argument_name
    from queuectl.core import wording

    cause = exc.__cause__
    param = exc.param
    if not isinstance(cause, ValidationError) or param is None:
        return exc.format_message()
    opts = sorted(getattr(param, "opts", None) or [], key=len, reverse=True)
    name = opts[0] if opts else argument_name(param)
    error = cause.errors()[0]
    what = wording.plain(error).rstrip(".")
    # A validator's own message names the value already; the plain words do not.
    given = f" (got {error['input']!r})" if error["type"] in wording.PLAIN else ""
    return f"invalid value for {name}: {what}{given}"


def report_click(exc: typer.TyperException) -> int:
    """Click's errors: a bad value is invalid input (3), the rest usage errors (2)."""
    import typer
    from typer._click.exceptions import MissingParameter

    # Click raises this (a UsageError) for a group given no subcommand; its message
    # is the group's help, which is what the user wants to see, on stdout.
    if type(exc).__name__ == "NoArgsIsHelpError":
        print(exc.format_message())
        return EXIT_OK
    if isinstance(exc, typer.BadParameter) and not isinstance(exc, MissingParameter):
        # The command line was well formed; a value in it is not (README: exit 3).
        return fail(bad_value(exc), EXIT_INVALID)
    return fail(exc.format_message(), EXIT_USAGE)


def report(exc: Exception, state: State | None) -> int:
    """Print the one line an error deserves and return the exit code it maps to."""
    import typer

    from queuectl.cli.render import clean

    if isinstance(exc, CancelledError):
        # Not an error: the user said no. One line, and the exit code of Ctrl-C.
        sys.stderr.write(f"queuectl: {clean(str(exc))}\n")
        return exc.exit_code
    if isinstance(exc, QueueCtlError):
        return fail(str(exc), exc.exit_code)
    if isinstance(exc, typer.TyperException):
        return report_click(exc)
    # Looked up, not imported: a command that never imported redis-py cannot have raised
    # one of its errors, and importing it here would cost every error its start-up time.
    redis = sys.modules.get("redis")
    if redis is not None and isinstance(exc, redis.RedisError):
        from queuectl.core.resilience import redis_error_message

        where = state.redis_description() if state is not None else "Redis"
        if isinstance(exc, redis.ResponseError) and "WRONGTYPE" in str(exc):
            # Not Redis failing: a key holds data QueueCTL cannot use (README: exit 8).
            return fail(f"{redis_error_message(exc, where)} (queuectl doctor)", EXIT_DATA)
        return fail(redis_error_message(exc, where), EXIT_REDIS)
    if os.environ.get("QUEUECTL_DEBUG"):
        raise exc
    return fail(f"internal error: {type(exc).__name__}: {exc} "
                "(run with QUEUECTL_DEBUG=1 for a traceback)", EXIT_INTERNAL)


def run(argv: Sequence[str]) -> int:
    """Run one command line and return its exit code; nothing escapes as a traceback."""
    import typer

    from queuectl.cli import completion
    from queuectl.cli.app import app
    from queuectl.cli.context import State

    state = State()
    try:
        completion.prepare()
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
        state.close()


def main() -> None:
    """Console script ``queuectl``."""
    # What start-up allocates (modules, classes, pydantic's schemas, Click's commands)
    # lives until exit and holds no garbage cycles, yet the collector walks it again and
    # again as it grows: about 100 of the 400 ms a command took. Command.invoke turns it on
    # once the command's code is loaded, before the command runs (see command.py).
    gc.disable()
    raise SystemExit(run(sys.argv[1:]))
