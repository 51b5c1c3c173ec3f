"""Process logging for the services: one line per event on stderr, as text or JSON.

A line about a job carries its id, queue, attempt and trace id as fields, so that a log
line leads to the job's trace and back. The worker binds them to the thread that runs
the job (``bind_job``); code elsewhere passes them with ``extra=``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime

from queuectl.core.display import escape
from queuectl.core.settings import LogFormat

# The fields that tie a line to a job and its trace, in the order text lines show them.
JOB_FIELDS = ("job_id", "queue", "attempt", "trace_id", "span_id")
# Text lines name them briefly; the span id is left to JSON (a trace id finds the spans).
_TEXT_NAMES = {"job_id": "job", "trace_id": "trace"}
_TEXT_SKIP = frozenset({"span_id"})

# What a LogRecord holds of its own; anything else on it came from ``extra=`` or bind_job.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "taskName"}
_JSON_BASE = ("time", "level", "service", "logger", "message")
# JSON escapes C0 controls itself; these are what it leaves raw that a terminal or a log
# viewer would act on (see display.escape), and lone surrogates, which cannot be
# encoded: escaped as \\uXXXX, the line is still the exact value in valid JSON. Compiled
# at first use (re's cache): the CLI imports this module and never logs JSON.
_JSON_UNSAFE = (
    "[\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff\ud800-\udfff]")

_job: ContextVar[Mapping[str, object] | None] = ContextVar("queuectl_job_fields", default=None)


def bind_job(fields: Mapping[str, object]) -> Token[Mapping[str, object] | None]:
    """Put ``fields`` on every line logged from this thread until ``unbind_job``."""
    return _job.set({k: v for k, v in fields.items() if v is not None})


def unbind_job(token: Token[Mapping[str, object] | None]) -> None:
    _job.reset(token)


def bound_job() -> Mapping[str, object] | None:
    """The fields bound in this thread, if any."""
    return _job.get()


def job_extra(job_id: str, queue: str, attempt: int | None = None,
              trace_id: str | None = None) -> dict[str, object]:
    """The ``extra=`` of a line about a job logged outside the thread that runs it."""
    out: dict[str, object] = {"job_id": job_id, "queue": queue}
    if attempt is not None:
        out["attempt"] = attempt
    if trace_id:
        out["trace_id"] = trace_id
    return out


class JobFieldsFilter(logging.Filter):
    """Adds the fields bound with ``bind_job`` to each record (``extra=`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _job.get()
        if fields:
            for name, value in fields.items():
                if name not in record.__dict__:
                    setattr(record, name, value)
        return True


def fields_of(record: logging.LogRecord) -> dict[str, object]:
    """The record's own fields: the job fields first, in order, then the rest by name."""
    extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
    ordered = {k: extra.pop(k) for k in JOB_FIELDS if k in extra}
    return {**ordered, **dict(sorted(extra.items()))}


class OneLineFormatter(logging.Formatter):
    """Escapes the whole event, traceback included, so that it stays one line.

    Log messages carry text from outside (a job's last output line, ids and errors read
    from Redis): unescaped, a newline in it would start a line that looks like the
    service's own ("2026-01-01 ERROR ...") and an ESC sequence would reach the terminal.
    A traceback is kept on the same line (``\\n`` between its lines): log collectors
    would split it into separate events anyway. Fields follow the message in brackets:
    ``[job=flaky queue=default attempt=2 trace=4bf9...]``.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Format as usual, escaping the message, fields, exception and stack parts."""
        record.message = escape(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        fields = [f"{_TEXT_NAMES.get(k, k)}={escape(str(v))}"
                  for k, v in fields_of(record).items() if k not in _TEXT_SKIP]
        if fields:
            line += f" [{' '.join(fields)}]"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += " " + escape(record.exc_text)
        if record.stack_info:
            line += " " + escape(self.formatStack(record.stack_info))
        return line


def _json_safe(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, service, logger, message, then the fields
    (and ``exception`` / ``stack`` when there are any)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname, "service": self.service, "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in fields_of(record).items():
            if name not in _JSON_BASE:
                doc[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        text = json.dumps(doc, ensure_ascii=False, default=str, separators=(",", ":"))
        return re.sub(_JSON_UNSAFE, _json_safe, text)


def setup_logging(level: str, service: str,
                  log_format: LogFormat = LogFormat.TEXT) -> logging.Logger:
    """Send every record to stderr, one escaped line (or JSON object) each (once per process)."""
    handler = logging.StreamHandler()
    handler.addFilter(JobFieldsFilter())
    if log_format is LogFormat.JSON:
        handler.setFormatter(JsonFormatter(f"queuectl-{service}"))
    else:
        handler.setFormatter(OneLineFormatter(
            f"%(asctime)s %(levelname)s {service} %(message)s", datefmt="%Y-%m-%dT%H:%M:%S%z",
        ))
    # basicConfig does nothing when the root logger already has a handler (a second call
    # in the same process, or a test's log capture).
    logging.basicConfig(level=level.upper(), handlers=[handler])
    return logging.getLogger(f"queuectl.{service}")
