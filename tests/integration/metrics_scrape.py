"""Scraping a real service's /metrics, /healthz and /readyz in tests."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping

from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, dict[str, str], float]


def get(port: int, path: str) -> tuple[int, str]:
    """(HTTP status, body) of a GET on the local endpoint; (0, why) when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)


def scrape(port: int) -> list[Sample]:
    """Every sample the endpoint exports, parsed by prometheus-client's own parser."""
    status, body = get(port, "/metrics")
    assert status == 200, f"/metrics on {port} answered {status}: {body[:200]}"
    return [(s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(body) for s in family.samples]


def scrape_soon(port: int) -> list[Sample]:
    """As scrape, but nothing (no samples) while the endpoint does not answer yet: for
    polling a service that is still starting."""
    status, _ = get(port, "/metrics")
    return scrape(port) if status == 200 else []


def total(samples: Iterable[Sample], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(value for n, got, value in samples
               if n == name and all(got.get(k) == v for k, v in labels.items()))


def has(samples: Iterable[Sample], name: str, **labels: str) -> bool:
    return any(n == name and all(got.get(k) == v for k, v in labels.items())
               for n, got, _ in samples)


def label_values(samples: Iterable[Sample], prefix: str = "queuectl_") -> dict[str, set[str]]:
    """Every value each label takes on the ``prefix`` metrics."""
    out: dict[str, set[str]] = {}
    for name, labels, _ in samples:
        if name.startswith(prefix):
            for key, value in labels.items():
                out.setdefault(key, set()).add(value)
    return out


def merged(*scrapes: list[Sample]) -> list[Sample]:
    return [s for part in scrapes for s in part]


def by_state(samples: Iterable[Sample], queue: str) -> Mapping[str, float]:
    return {labels["state"]: value for name, labels, value in samples
            if name == "queuectl_queue_jobs" and labels.get("queue") == queue}
