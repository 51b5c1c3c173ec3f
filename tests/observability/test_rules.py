"""The alert rules, read as data: what each alert carries, what its PromQL may use,
and that the promtool unit tests cover each alert firing and not firing."""

from __future__ import annotations

from collections import defaultdict

import promql_parser
import pytest

from .queries import (
    METRICS,
    RULES,
    RULES_TEST,
    Alert,
    alerts,
    load_yaml,
    problems,
    recording_rules,
    selector_name,
    selectors,
)

ALERTS = alerts()
REQUIRED = {
    "QueueCTLOldestJobTooOld": "queuectl_queue_oldest_job_age_seconds",
    "QueueCTLDeadLetterGrowing": "queuectl_queue_jobs",
    "QueueCTLJobsWaitingNoWorker": "queuectl_worker_busy_slots",
    "QueueCTLRetriesNotPromoted": "queuectl_retries_due",
    "QueueCTLSchedulerDown": "queuectl_scheduler_leader",
    "QueueCTLHighFailureRatio": "queuectl_jobs_finished_total",
    "QueueCTLRedisErrors": "queuectl_redis_errors_total",
}


def test_one_group_named_queuectl() -> None:
    groups = load_yaml(RULES)["groups"]
    assert [g["name"] for g in groups] == ["queuectl"]


def test_the_required_alerts_watch_their_metrics() -> None:
    by_name = {a.name: a for a in ALERTS}
    assert set(by_name) == set(REQUIRED)
    for name, metric in REQUIRED.items():
        used = {selector_name(s) for s in selectors(_parsed(by_name[name]))}
        assert metric in used, f"{name} does not look at {metric}: {by_name[name].expr}"


def _parsed(alert: Alert) -> promql_parser.Expr:
    return promql_parser.parse(alert.expr)


@pytest.mark.parametrize("alert", ALERTS, ids=[a.name for a in ALERTS])
def test_alert_has_severity_and_text(alert: Alert) -> None:
    assert alert.labels.get("severity") in ("warning", "critical")
    assert alert.annotations.get("summary", "").strip()
    assert alert.annotations.get("description", "").strip()


@pytest.mark.parametrize("alert", ALERTS, ids=[a.name for a in ALERTS])
def test_alert_expression_uses_only_queuectl_metrics_rightly(alert: Alert) -> None:
    assert problems(alert.expr) == []


def test_recording_rules_use_only_queuectl_metrics_rightly() -> None:
    for name, expr in recording_rules():
        assert problems(expr) == [], name


def test_queue_age_not_queue_length() -> None:
    by_name = {a.name: a for a in ALERTS}
    used = {selector_name(s) for s in selectors(_parsed(by_name["QueueCTLOldestJobTooOld"]))}
    assert used == {"queuectl_queue_oldest_job_age_seconds"}


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    fires: dict[str, int] = defaultdict(int)
    quiet: dict[str, int] = defaultdict(int)
    for group in load_yaml(RULES_TEST)["tests"]:
        for case in group.get("alert_rule_test", []):
            if case.get("exp_alerts"):
                fires[case["alertname"]] += 1
                for expected in case["exp_alerts"]:
                    # Each firing case pins the summary and description as rendered.
                    assert set(expected.get("exp_annotations", {})) == {
                        "summary", "description"}, case
            else:
                quiet[case["alertname"]] += 1
    names = {a.name for a in ALERTS}
    assert set(fires) | set(quiet) <= names, "tests of alerts that do not exist"
    missing = sorted(n for n in names if not fires[n] or not quiet[n])
    assert missing == [], f"alerts without a firing and a non-firing case: {missing}"


def test_catalogue_metrics_are_queuectl_metrics() -> None:
    # A guard on the catalogue itself: counters end in _total, nothing else does.
    for name, metric in METRICS.items():
        assert name.startswith("queuectl_")
        assert name.endswith("_total") == (metric.kind == "counter"), name
