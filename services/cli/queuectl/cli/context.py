"""What every command receives through ``typer.Context.obj``: settings and a lazy client."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer

from queuectl.core import embedded
from queuectl.core.display import escape
from queuectl.core.errors import RedisUnavailableError

if TYPE_CHECKING:
    from queuectl.core.client import Client
    from queuectl.core.settings import Settings

# The longest a command waits at exit for its spans to be exported: an unreachable
# collector costs a command this much, not the exporter's own timeout (10 s) or more.
TRACE_FLUSH_TIMEOUT = 2.0


@dataclass
class State:
    """Settings read once, when a command first needs them; Redis likewise.

    Lazy on purpose: ``--help``, ``--version`` and shell completion work whatever the
    environment holds, and an invalid setting is reported (exit 3) by the commands that
    use it, before anything else happens.
    """

    _settings: Settings | None = None
    url: str | None = None
    _client: Client | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        """The environment's settings; InvalidInputError (exit 3) if one is invalid."""
        if self._settings is None:
            # Imported here, as redis-py below: --help, --version and completion need
            # neither pydantic-settings nor redis-py, and start faster without them.
            from queuectl.core.settings import load_settings

            self._settings = load_settings()
        return self._settings

    @property
    def client(self) -> Client:
        """Connect on first use; the embedded server must already run (see ``connect``)."""
        return self.connect(start=False)

    def connect(self, *, start: bool) -> Client:
        """Connect on first use. With no URL configured, only ``start=True`` (commands that
        bring work: enqueue, worker start, scheduler, redis start) starts the embedded
        server; every other command says it is not running, so that reading the queue
        never brings a stopped server back behind the user's back."""
        if self._client is None:
            from queuectl.core.client import Client
            from queuectl.core.connection import redis_url
            from queuectl.core.tracing import Tracing

            if not self.settings.redis_url and not start and \
                    not embedded.is_running(self.settings.data_dir):
                raise RedisUnavailableError(
                    f"the embedded Redis is not running (data in {self.settings.data_dir}); "
                    "start it with: queuectl redis start")
            self.url = redis_url(self.settings)
            # Resolve the URL once: Client.connect would otherwise probe the embedded socket again.
            resolved = self.settings.model_copy(update={"redis_url": self.url})
            # quiet: the SDK's export errors become one warning line at exit (close).
            self._client = Client.connect(resolved, Tracing("queuectl-cli", quiet=True))
        return self._client

    def redis_description(self) -> str:
        """The URL a Redis error refers to (the embedded socket when none is configured)."""
        if self.url:
            return self.url
        if self._settings is None:
            return "Redis"
        if self.settings.redis_url:
            return self.settings.redis_url
        return embedded.socket_url(self.settings.data_dir)

    def close(self) -> None:
        """Drop the connection pool, if a command opened one; export its spans."""
        if self._client is not None:
            tracing = self._client.store.tracing
            self._client.redis.close()
            self._client = None
            flushed = tracing.shutdown(TRACE_FLUSH_TIMEOUT)
            if not flushed or tracing.dropped:
                why = f" within {TRACE_FLUSH_TIMEOUT:g}s" if not flushed else ""
                first = f": {tracing.dropped[0]}" if tracing.dropped else ""
                sys.stderr.write(f"queuectl: warning: traces not exported{why}{escape(first)}\n")


def get_state(ctx: typer.Context) -> State:
    """The State that ``main()`` put on the root context."""
    obj = ctx.find_object(State)
    if obj is None:
        raise RuntimeError("queuectl commands must be run through queuectl.cli.main")
    return obj


def get_client(ctx: typer.Context, *, start: bool = False) -> Client:
    """The command's client; ``start`` lets it start the embedded server (State.connect)."""
    return get_state(ctx).connect(start=start)
