"""Process logging for the services: one line per event on stderr, with time and level."""

from __future__ import annotations

import logging

from queuectl.core.display import escape


class OneLineFormatter(logging.Formatter):
    """Escapes the whole event, traceback included, so that it stays one line.

    Log messages carry text from outside (a job's last output line, ids and errors read
    from Redis): unescaped, a newline in it would start a line that looks like the
    service's own ("2026-01-01 ERROR ...") and an ESC sequence would reach the terminal.
    A traceback is kept on the same line (``\\n`` between its lines): log collectors
    would split it into separate events anyway.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Format as usual, escaping the message, exception and stack parts."""
        record.message = escape(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += " " + escape(record.exc_text)
        if record.stack_info:
            line += " " + escape(self.formatStack(record.stack_info))
        return line


def setup_logging(level: str, service: str) -> logging.Logger:
    """Send every ``queuectl.*`` record to stderr, one escaped line each (once per process)."""
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter(
        f"%(asctime)s %(levelname)s {service} %(message)s", datefmt="%Y-%m-%dT%H:%M:%S%z",
    ))
    # basicConfig does nothing when the root logger already has a handler (a second call
    # in the same process, or a test's log capture).
    logging.basicConfig(level=level.upper(), handlers=[handler])
    return logging.getLogger(f"queuectl.{service}")
