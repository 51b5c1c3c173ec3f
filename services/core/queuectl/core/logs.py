"""Process logging for the services: one line per event on stderr, with time and level."""

from __future__ import annotations

import logging


def setup_logging(level: str, service: str) -> logging.Logger:
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)s {service} %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )
    return logging.getLogger(f"queuectl.{service}")
