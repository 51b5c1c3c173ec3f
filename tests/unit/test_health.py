"""Health: a loop that stops ticking is hung; one that ended is not; the endpoint answers."""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.metrics_core import Metric

from queuectl.core.health import Endpoint, Health


def test_a_watched_loop_that_stops_ticking_is_hung_and_one_that_ended_is_not() -> None:
    health = Health(stuck_after=0.2)
    ticking, stuck, release = threading.Event(), threading.Event(), threading.Event()

    def loop(stop_ticking: threading.Event) -> None:
        with health.watching():
            while not stop_ticking.is_set():
                health.tick()
                stop_ticking.wait(0.02)
            release.wait(5)

    busy = threading.Thread(target=loop, args=(ticking,), name="busy")
    hung = threading.Thread(target=loop, args=(stuck,), name="hung")
    busy.start()
    hung.start()
    stuck.set()  # "hung" stops ticking, "busy" goes on
    threading.Event().wait(0.4)
    assert health.stuck() == ["hung"]
    assert health.not_live() == "no progress for over 0.2s: hung"
    ticking.set()
    release.set()
    busy.join(5)
    hung.join(5)
    assert health.stuck() == [] and health.not_live() is None


def test_readiness_says_why_not() -> None:
    health = Health(60)
    assert health.not_ready() == "the Lua scripts are not loaded yet"
    health.scripts_loaded = True
    assert health.not_ready() is None
    health.redis_down("slot 0")
    health.redis_down("heartbeat")
    assert health.not_ready() == "Redis is unreachable (heartbeat, slot 0)"
    health.redis_up("slot 0")
    health.redis_up("heartbeat")
    health.draining = True
    assert health.not_ready() == "draining: no new jobs are taken"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_endpoint_serves_probes_and_metrics() -> None:
    registry = CollectorRegistry()
    Counter("queuectl_things_total", "things", registry=registry).inc(3)
    health = Health(60)
    endpoint = Endpoint("127.0.0.1", 0, registry, health).start()
    try:
        base = f"http://127.0.0.1:{endpoint.port}"
        assert _get(base + "/healthz") == (200, "ok\n")
        assert _get(base + "/readyz") == (503, "the Lua scripts are not loaded yet\n")
        status, body = _get(base + "/metrics")
        assert status == 200 and "queuectl_things_total 3.0" in body
    finally:
        endpoint.close()


class _Broken:
    """A collector whose scrape fails, as one holding a dead connection would."""

    def collect(self) -> Iterator[Metric]:
        raise RuntimeError("the collector broke")


def test_a_failing_scrape_is_a_500_and_one_log_line(caplog: pytest.LogCaptureFixture,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    registry = CollectorRegistry()
    registry.register(_Broken())
    endpoint = Endpoint("127.0.0.1", 0, registry, Health(60)).start()
    try:
        with caplog.at_level(logging.WARNING, logger="queuectl.health"):
            status, _ = _get(f"http://127.0.0.1:{endpoint.port}/metrics")
    finally:
        endpoint.close()
    assert status == 500
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["metrics endpoint: RuntimeError: the collector broke"]
    assert "Traceback" not in capfd.readouterr().err
