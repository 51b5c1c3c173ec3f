"""The command line of the services (``queuectl-worker``, ``queuectl-scheduler``).

A service is configured only by its environment, so its command line holds
nothing but ``--help`` and ``--version``. Both are answered before settings
are read, Redis is reached or anything starts: ``kubectl exec POD --
queuectl-worker --help`` must not start a second worker next to the first.
Anything else is a usage error (one line, exit 2), never silently ignored.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

import redis

from queuectl.core.display import escape
from queuectl.core.errors import EXIT_OK, EXIT_REDIS, EXIT_USAGE, InvalidInputError, QueueCtlError
from queuectl.core.resilience import redis_error_message
from queuectl.core.settings import Settings, load_settings
from queuectl.core.version import version_line

WIDTH = 79
CHECKS = ("live", "ready")

# The services' exit codes (README "Exit codes", second table); every service prints them.
SERVICE_EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "stopped (SIGTERM/SIGINT, or queuectl worker stop)"),
    (1, "cannot work here (an unusable log directory, runs that cannot start, a scheduler "
        "round failing ten times in a row, a thread that died)"),
    (2, "usage error: an argument other than --help or --version"),
    (3, "invalid settings (environment)"),
    (5, "the worker id is held by another live worker, or was taken over"),
    (6, "Redis refused the credentials or a command (ACL), or the embedded Redis could not "
        "be started"),
    (8, "a key the service itself needs has the wrong type"),
    (130, "the scheduler got a second SIGTERM/SIGINT and stopped at once (a worker stops "
          "its jobs, hands them back and exits 0)"),
)

# Every service reads these; each service adds its own (ServiceHelp.variables).
COMMON_VARIABLES: tuple[tuple[str, str], ...] = (
    ("QUEUECTL_REDIS_URL", "redis://, rediss:// (TLS), unix:// or redis+sentinel:// URL, or "
                           "cluster nodes with QUEUECTL_REDIS_CLUSTER=true; required (only "
                           "the CLI's forms, such as 'queuectl worker start', fall back to "
                           "an embedded Redis under QUEUECTL_DATA_DIR)"),
    ("QUEUECTL_KEY_PREFIX", "prefix of every key (default queuectl)"),
    ("QUEUECTL_LOG_LEVEL", "debug, info, warning or error (default info)"),
    ("QUEUECTL_LOG_FORMAT", "service log lines: text or json (default text)"),
    ("QUEUECTL_METRICS_PORT", "/metrics, /healthz and /readyz (default 9750 for the worker, "
                              "9751 for the scheduler; 0 = off)"),
    ("QUEUECTL_TRACE_MODE", "parent (each attempt in the job's trace, the default) or link "
                            "(a trace per attempt, linked); traces are on when "
                            "OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_TRACES_EXPORTER is set"),
)


@dataclass(frozen=True)
class ServiceHelp:
    """What ``<prog> --help`` says: the service's purpose, variables and an example."""

    prog: str
    purpose: str
    variables: tuple[tuple[str, str], ...]
    example: str

    def text(self) -> str:
        """The full help, ending with the exit codes."""
        lines = [
            f"Usage: {self.prog} [--help | --version | --check [live|ready]]",
            "",
            textwrap.fill(self.purpose, WIDTH),
            "",
            textwrap.fill("It takes no arguments: it is configured only by QUEUECTL_* "
                          "environment variables (README, Configuration). The main ones:",
                          WIDTH),
            *_rows(COMMON_VARIABLES + self.variables),
            "",
            textwrap.fill("--check asks the service running on this host whether it is live "
                          "(/healthz: not hung) or ready (/readyz: Redis reachable, not "
                          "draining), for exec probes: exit 0 yes, 1 no.", WIDTH),
            "",
            "Example:",
            f"  {self.example}",
            "",
            "Exit codes:",
            *_rows([(str(code), meaning) for code, meaning in SERVICE_EXIT_CODES]),
        ]
        return "\n".join(lines) + "\n"


def _rows(rows: Sequence[tuple[str, str]]) -> list[str]:
    """Two columns, the second wrapped under itself."""
    width = max(len(name) for name, _ in rows)
    out = []
    for name, meaning in rows:
        out += textwrap.wrap(meaning, WIDTH, initial_indent=f"  {name.ljust(width)}  ",
                             subsequent_indent=" " * (width + 4))
    return out


def handle_arguments(service: ServiceHelp, argv: Sequence[str],
                     check: Callable[[str], int] | None = None) -> int | None:
    """None when the service should start; else the exit code, after printing the help,
    the version, the answer of ``--check [live|ready]`` (asks the running service: an exec
    probe), or a one-line usage error (arguments are taken in order, like Click)."""
    if check is not None and argv and argv[0].split("=", 1)[0] == "--check":
        what = argv[0].partition("=")[2] or (argv[1] if len(argv) > 1 else "live")
        extra = argv[1:] if "=" in argv[0] else argv[2:]
        if what in CHECKS and not extra:
            return check(what)
        bad = extra[0] if what in CHECKS else what
        sys.stderr.write(f"{service.prog}: error: --check takes 'live' or 'ready', not "
                         f"'{escape(bad)}'\n")
        return EXIT_USAGE
    for arg in argv:
        if arg in ("-h", "--help"):
            sys.stdout.write(service.text())
            return EXIT_OK
        if arg == "--version":
            sys.stdout.write(version_line(service.prog) + "\n")
            return EXIT_OK
        what = "option" if arg.startswith("-") and arg != "-" else "argument"
        sys.stderr.write(
            f"{service.prog}: error: unexpected {what} '{escape(arg)}': the service takes "
            "no arguments and is configured by QUEUECTL_* environment variables "
            f"(see {service.prog} --help)\n")
        return EXIT_USAGE
    return None


def service_settings(local_command: str) -> Settings:
    """The settings of a service (``queuectl-worker``, ``queuectl-scheduler``), which needs
    ``QUEUECTL_REDIS_URL``: InvalidInputError (exit 3) without it.

    A service never starts the embedded Redis: in a pod, a misspelled variable would
    otherwise run a worker against a private server that nobody else sees, taking no
    job and reporting no error. ``local_command`` (the CLI's form, which keeps the
    embedded default for a try on a laptop) is named in the message.
    """
    settings = load_settings()
    if not settings.redis_url:
        raise InvalidInputError(
            "QUEUECTL_REDIS_URL is not set: a service works on the Redis that its workers, "
            "schedulers and CLI share, never on a private one (to try QueueCTL on this "
            f"machine with its embedded Redis, run '{local_command}')")
    return settings



def run_service(prog: str, local_command: str, run: Callable[[Settings], int]) -> NoReturn:
    """Build a service's settings, run it and exit with its code. Every failure that
    reaches here is one ``<prog>: error:`` line: a QueueCtlError with its own code, a
    Redis reply no loop expected (at start-up or shut-down) with 6."""
    settings: Settings | None = None
    try:
        settings = service_settings(local_command)
        code = run(settings)
    except QueueCtlError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except redis.RedisError as exc:
        url = (settings.redis_url or "") if settings else ""
        print(f"{prog}: error: {redis_error_message(exc, url)}", file=sys.stderr)
        raise SystemExit(EXIT_REDIS) from None
    raise SystemExit(code)
