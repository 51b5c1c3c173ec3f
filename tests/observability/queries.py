"""The PromQL of deploy/: the dashboard's panel queries and the alert rules, and what
the tests check in them, on the syntax tree of a real PromQL parser (promql-parser).

The metric catalogue below is QueueCTL's contract (README, "Observability"): names,
types and labels. The dashboard and the rules may use nothing else.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import promql_parser as pp
import yaml
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import prometheus as prom_query
from grafana_foundation_sdk.models.dashboard import Dashboard, Panel, RowPanel

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "queuectl-dashboard.json"
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "queuectl-rules.yml"
RULES_TEST = PROMETHEUS_DIR / "queuectl-rules.test.yml"
SCRAPE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"


class Kind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class Metric:
    kind: Kind
    labels: frozenset[str]


def _m(kind: Kind, *labels: str) -> Metric:
    return Metric(kind, frozenset(labels))


METRICS: dict[str, Metric] = {
    # worker, per process
    "queuectl_jobs_started_total": _m(Kind.COUNTER, "queue"),
    "queuectl_jobs_finished_total": _m(Kind.COUNTER, "queue", "outcome"),
    "queuectl_job_duration_seconds": _m(Kind.HISTOGRAM, "queue", "outcome"),
    "queuectl_job_wait_seconds": _m(Kind.HISTOGRAM, "queue"),
    "queuectl_worker_slots": _m(Kind.GAUGE),
    "queuectl_worker_busy_slots": _m(Kind.GAUGE),
    "queuectl_job_output_bytes_total": _m(Kind.COUNTER, "queue"),
    # worker and scheduler
    "queuectl_redis_errors_total": _m(Kind.COUNTER, "operation"),
    # scheduler: cluster-wide, from the replica holding the lease
    "queuectl_queue_jobs": _m(Kind.GAUGE, "queue", "state"),
    "queuectl_queue_oldest_job_age_seconds": _m(Kind.GAUGE, "queue"),
    "queuectl_retries_due": _m(Kind.GAUGE, "queue"),
    "queuectl_promoted_total": _m(Kind.COUNTER, "queue", "source"),
    "queuectl_promotion_lag_seconds": _m(Kind.HISTOGRAM),
    "queuectl_recovered_jobs_total": _m(Kind.COUNTER),
    "queuectl_workers": _m(Kind.GAUGE, "state"),
    "queuectl_scheduler_leader": _m(Kind.GAUGE),
}
OUTCOMES = frozenset({"succeeded", "retried", "timeout", "dead", "cancelled", "interrupted",
                      "failed"})
# The values a label may take, where the contract fixes them.
LABEL_VALUES: dict[tuple[str, str], frozenset[str]] = {
    ("queuectl_jobs_finished_total", "outcome"): OUTCOMES,
    ("queuectl_job_duration_seconds", "outcome"): OUTCOMES,
    ("queuectl_queue_jobs", "state"): frozenset(
        {"pending", "scheduled", "retrying", "processing", "dead"}),
    ("queuectl_workers", "state"): frozenset({"running", "stopping"}),
    ("queuectl_promoted_total", "source"): frozenset({"retry", "delayed"}),
}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
COUNTER_FUNCTIONS = frozenset({"rate", "irate", "increase", "resets"})
GAUGE_FUNCTIONS = frozenset({"delta", "idelta", "deriv", "predict_linear", "holt_winters",
                             "changes"})
SET_OPERATORS = frozenset({"and", "or", "unless"})
COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})
_LEGEND_LABEL = re.compile(r"{{\s*([A-Za-z_][A-Za-z0-9_]*)\s*}}")
_ANNOTATION_LABEL = re.compile(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)")
_PLAIN_ALTERNATION = re.compile(r"^[A-Za-z0-9_]+(\|[A-Za-z0-9_]+)*$")


# -- the dashboard -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PanelQuery:
    panel: str
    ref_id: str
    expr: str
    legend: str

    @property
    def name(self) -> str:
        return f"{self.panel} [{self.ref_id}]"

    @property
    def legend_labels(self) -> set[str]:
        """The labels the panel's legend shows: every series must carry them."""
        return set(_LEGEND_LABEL.findall(self.legend))


def raw_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def load_dashboard() -> Dashboard:
    """The dashboard decoded by Grafana's own SDK, with its panel and query plug-ins."""
    register_default_plugins()
    return Dashboard.from_json(raw_dashboard())


def panels(dashboard: Dashboard) -> list[Panel]:
    """Every panel that is not a row, including those inside collapsed rows."""
    out: list[Panel] = []
    for item in dashboard.panels or []:
        if isinstance(item, RowPanel):
            out.extend(item.panels)
        else:
            out.append(item)
    return out


def panel_queries(dashboard: Dashboard) -> list[PanelQuery]:
    out: list[PanelQuery] = []
    for panel in panels(dashboard):
        for target in panel.targets or []:
            # Decoded as a Prometheus query only if its data source says prometheus.
            assert isinstance(target, prom_query.Dataquery), (
                f"panel {panel.title!r}: target {target!r} is not a Prometheus query")
            out.append(PanelQuery(panel.title or "", target.ref_id, target.expr,
                                  target.legend_format or ""))
    return out


def substitute(expr: str, *, queue: str = ".*", rate_interval: str = "1m") -> str:
    """The query as Grafana sends it, for one value of each dashboard variable."""
    return expr.replace("$__rate_interval", rate_interval).replace("$queue", queue)


# -- the rules -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    labels: dict[str, str]
    annotations: dict[str, str]

    @property
    def annotation_labels(self) -> set[str]:
        """The series labels the annotations print: the alert's series must carry them."""
        return {name for text in self.annotations.values()
                for name in _ANNOTATION_LABEL.findall(text)}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alerts() -> list[Alert]:
    out: list[Alert] = []
    for group in load_yaml(RULES)["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                out.append(Alert(rule["alert"], rule["expr"], dict(rule.get("labels", {})),
                                 dict(rule.get("annotations", {}))))
    return out


def recording_rules() -> list[tuple[str, str]]:
    return [(rule["record"], rule["expr"]) for group in load_yaml(RULES)["groups"]
            for rule in group["rules"] if "record" in rule]


# -- the syntax tree -----------------------------------------------------------------------------

def nodes(expr: pp.Expr) -> list[pp.Expr]:
    found: list[pp.Expr] = []

    def visit(node: pp.Expr) -> None:
        found.append(node)

    pp.walk(expr, visit)
    return found


def selector_name(selector: pp.VectorSelector) -> str | None:
    if selector.name:
        return selector.name
    for matcher in selector.matchers.matchers:
        if matcher.name == "__name__" and matcher.op == pp.MatchOp.Equal:
            return matcher.value
    return None


def base_metric(series: str) -> str | None:
    """The catalogue metric a series name belongs to (histograms have three series)."""
    if series in METRICS and METRICS[series].kind is not Kind.HISTOGRAM:
        return series
    for suffix in HISTOGRAM_SUFFIXES:
        base = series.removesuffix(suffix)
        if base != series and base in METRICS and METRICS[base].kind is Kind.HISTOGRAM:
            return base
    return None


def is_counter_like(series: str) -> bool:
    """A counter, or a histogram's _bucket/_count/_sum (which are counters too)."""
    base = base_metric(series)
    if base is None:
        return False
    if METRICS[base].kind is Kind.COUNTER:
        return series.endswith("_total")
    return series.endswith(HISTOGRAM_SUFFIXES)


def selectors(expr: pp.Expr) -> list[pp.VectorSelector]:
    return [n for n in nodes(expr) if isinstance(n, pp.VectorSelector)]


def problems(expr_text: str) -> list[str]:
    """What is wrong with one expression, by the rules of this deployment; [] if nothing."""
    expr = pp.parse(expr_text)
    found: list[str] = []
    for selector in selectors(expr):
        found.extend(_selector_problems(selector))
    for node in nodes(expr):
        if isinstance(node, pp.Call):
            found.extend(_call_problems(node))
    return found


def _selector_problems(selector: pp.VectorSelector) -> list[str]:
    name = selector_name(selector)
    if name is None:
        return [f"{selector}: selects no metric by name"]
    base = base_metric(name)
    if base is None:
        return [f"{name}: not a QueueCTL metric"]
    allowed = METRICS[base].labels | TARGET_LABELS | {"__name__"}
    if name.endswith("_bucket"):
        allowed |= {"le"}
    out: list[str] = []
    for matcher in selector.matchers.matchers:
        if matcher.name not in allowed:
            out.append(f"{name}: has no label {matcher.name!r}")
            continue
        known = LABEL_VALUES.get((base, matcher.name))
        if known is None:
            continue
        if matcher.op in (pp.MatchOp.Equal, pp.MatchOp.NotEqual):
            values = {matcher.value}
        elif _PLAIN_ALTERNATION.match(matcher.value):
            values = set(matcher.value.split("|"))
        else:
            continue
        out.extend(f"{name}: {matcher.name}={v!r} is never exported"
                   for v in sorted(values - known))
    return out


def _range_metric(arg: object) -> str | None:
    if isinstance(arg, pp.MatrixSelector):
        return selector_name(arg.vector_selector)
    return None


def _call_problems(call: pp.Call) -> list[str]:
    func = call.func.name
    if func in COUNTER_FUNCTIONS | GAUGE_FUNCTIONS:
        name = _range_metric(call.args[0])
        if name is None:
            return [f"{func}() over something that is not a metric's range: {call.args[0]}"]
        if func in COUNTER_FUNCTIONS and not is_counter_like(name):
            return [f"{func}({name}[...]): {func} only over counters (*_total) and "
                    "histogram series (*_bucket, *_count, *_sum)"]
        if func in GAUGE_FUNCTIONS and is_counter_like(name):
            return [f"{func}({name}[...]): {func} is for gauges; use rate or increase"]
    if func == "histogram_quantile":
        inner = call.args[1]
        while isinstance(inner, pp.ParenExpr):
            inner = inner.expr
        if isinstance(inner, pp.AggregateExpr) and "le" not in _by_labels(inner):
            return [f"histogram_quantile over an aggregation without le: {call}"]
    return []


def _by_labels(agg: pp.AggregateExpr) -> list[str]:
    modifier = agg.modifier
    if modifier is None or modifier.type != pp.AggModifierType.By:
        return []
    return list(modifier.labels)


def alert_leaves(expr_text: str) -> list[str]:
    """The queries an alert is made of, each without its threshold.

    An alert fires when its condition holds; in a healthy, running system it mostly
    does not, so its full expression is empty. Each operand of and/or/unless with its
    comparison to a number removed, and the argument of absent(), must still find data
    there, or the alert watches series that do not exist. The first leaf is the one
    whose labels the alert carries.
    """
    return [str(node) for node in _leaves(pp.parse(expr_text))]


def _leaves(node: pp.Expr) -> list[pp.Expr]:
    if isinstance(node, pp.ParenExpr):
        return _leaves(node.expr)
    if isinstance(node, pp.BinaryExpr):
        op = str(node.op)
        if op in SET_OPERATORS:
            return _leaves(node.lhs) + _leaves(node.rhs)
        returns_bool = node.modifier is not None and node.modifier.return_bool
        if op in COMPARISONS and not returns_bool:
            if isinstance(node.rhs, pp.NumberLiteral):
                return _leaves(node.lhs)
            if isinstance(node.lhs, pp.NumberLiteral):
                return _leaves(node.rhs)
    if isinstance(node, pp.Call) and node.func.name in ("absent", "absent_over_time"):
        # absent(X) is empty while X has data: X itself must find data.
        return [node.args[0]]
    return [node]
