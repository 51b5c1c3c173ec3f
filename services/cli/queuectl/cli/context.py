"""What every command receives through ``typer.Context.obj``: settings and a lazy client."""

from __future__ import annotations

from dataclasses import dataclass, field

import typer

from queuectl.core import embedded
from queuectl.core.client import Client
from queuectl.core.connection import redis_url
from queuectl.core.settings import Settings, load_settings


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
            self._settings = load_settings()
        return self._settings

    @property
    def client(self) -> Client:
        """Connect on first use (starting the embedded server if no URL is configured)."""
        if self._client is None:
            self.url = redis_url(self.settings)
            # Resolve the URL once: Client.connect would otherwise probe the embedded socket again.
            resolved = self.settings.model_copy(update={"redis_url": self.url})
            self._client = Client.connect(resolved)
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
        """Drop the connection pool, if a command opened one."""
        if self._client is not None:
            self._client.redis.close()
            self._client = None


def get_state(ctx: typer.Context) -> State:
    """The State that ``main()`` put on the root context."""
    obj = ctx.find_object(State)
    if obj is None:
        raise RuntimeError("queuectl commands must be run through queuectl.cli.main")
    return obj


def get_client(ctx: typer.Context) -> Client:
    """Shortcut for ``get_state(ctx).client``."""
    return get_state(ctx).client
