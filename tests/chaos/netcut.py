"""A TCP proxy in front of Redis that can cut a connection after Redis ran a command and
before its reply reached the client: the one network fault a retry cannot see.

Signals and restarts cut connections at random points; this cuts one exactly where it
hurts, once, so that a test of it is deterministic.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading

from queuectl.core.lua import script_source

# Enough of the client's stream to find a 40-character script sha split across reads.
TAIL = 128


def script_sha(name: str) -> bytes:
    """The sha1 redis-py sends in EVALSHA for one of QueueCTL's scripts."""
    text = script_source(name)
    return hashlib.sha1(text.encode()).hexdigest().encode()  # Redis's choice of hash


class CutProxy:
    """Forwards 127.0.0.1:<port> to a Redis server; ``arm`` cuts one matching reply."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._sha: bytes | None = None
        self._reply_prefix = b""
        self.cut = threading.Event()
        self._closed = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="cutproxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def arm(self, sha: bytes, reply_prefix: bytes) -> None:
        """Cut the first connection whose EVALSHA ``sha`` gets a reply starting with
        ``reply_prefix``: Redis has run the script, the client never sees the reply."""
        with self._lock:
            self._sha, self._reply_prefix = sha, reply_prefix

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self._sockets += [client, server]
            # Per connection: has the client just sent the armed EVALSHA?
            pending = threading.Event()
            threading.Thread(target=self._upstream, args=(client, server, pending),
                             daemon=True).start()
            threading.Thread(target=self._downstream, args=(server, client, pending),
                             daemon=True).start()

    def _upstream(self, client: socket.socket, server: socket.socket,
                  pending: threading.Event) -> None:
        seen = b""
        while data := _recv(client):
            seen = (seen + data)[-TAIL - len(data):]
            with self._lock:
                if self._sha is not None and self._sha in seen:
                    pending.set()
                    seen = b""
            if not _send(server, data):
                break
        _shut(client, server)

    def _downstream(self, server: socket.socket, client: socket.socket,
                    pending: threading.Event) -> None:
        while data := _recv(server):
            if pending.is_set():
                pending.clear()
                with self._lock:
                    hit = self._sha is not None and data.startswith(self._reply_prefix)
                    if hit:
                        self._sha = None  # once
                if hit:
                    # Redis ran the command; drop its reply and the connection with it.
                    self.cut.set()
                    break
            if not _send(client, data):
                break
        _shut(client, server)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


def _shut(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
