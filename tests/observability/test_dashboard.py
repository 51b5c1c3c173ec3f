"""The Grafana dashboard, decoded by Grafana's own SDK (grafana-foundation-sdk): its
variables, its layout, and the PromQL of every panel, parsed."""

from __future__ import annotations

import promql_parser
import pytest
from grafana_foundation_sdk.models.dashboard import Dashboard, VariableModel, VariableType

from .queries import (
    METRICS,
    PanelQuery,
    base_metric,
    load_dashboard,
    panel_queries,
    panels,
    problems,
    raw_dashboard,
    selector_name,
    selectors,
    substitute,
)

DASHBOARD = load_dashboard()
QUERIES = panel_queries(DASHBOARD)
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def test_identity() -> None:
    assert DASHBOARD.uid == "queuectl"
    assert DASHBOARD.title == "QueueCTL"
    # At least what Grafana's SDK (the pinned build, for Grafana 11.6) writes: 41.
    assert DASHBOARD.schema_version >= Dashboard().schema_version >= 41


def _variables(dashboard: Dashboard) -> dict[str, VariableModel]:
    assert dashboard.templating is not None
    return {v.name: v for v in dashboard.templating.list_val or []}


def test_datasource_variable() -> None:
    variables = _variables(DASHBOARD)
    assert list(variables) == ["datasource", "queue"]
    raw = raw_dashboard()["templating"]["list"][0]
    assert raw["type"] == VariableType.DATASOURCE.value
    assert raw["query"] == "prometheus"


def test_queue_variable() -> None:
    queue = _variables(DASHBOARD)["queue"]
    assert queue.type_val == VariableType.QUERY
    assert queue.query == "label_values(queuectl_queue_jobs, queue)"
    assert queue.multi is True
    assert queue.include_all is True
    # "All" sends .* rather than the list of known queues, so a queue the scheduler
    # has not listed yet (or pruned) still shows in the worker panels.
    assert queue.all_value == ".*"
    assert queue.datasource is not None
    assert (queue.datasource.type_val, queue.datasource.uid) == ("prometheus", "${datasource}")


def test_every_panel_queries_the_chosen_prometheus() -> None:
    raw = raw_dashboard()
    inner = [p for row in raw["panels"] for p in row.get("panels", [])]
    for panel in raw["panels"] + inner:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_layout() -> None:
    decoded = panels(DASHBOARD)
    assert len(decoded) >= 20
    ids = [p.id_val for p in decoded]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: dict[tuple[int, int], str] = {}
    for panel in decoded:
        pos = panel.grid_pos
        assert pos is not None, panel.title
        assert pos.x >= 0 and pos.x + pos.w <= 24, panel.title
        for x in range(pos.x, pos.x + pos.w):
            for y in range(pos.y, pos.y + pos.h):
                assert (x, y) not in cells, f"{panel.title} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel.title or ""


def test_titles_and_descriptions() -> None:
    titles = [p.title for p in panels(DASHBOARD)]
    assert len(titles) == len(set(titles)), "panel titles repeat"
    for panel in panels(DASHBOARD):
        assert panel.description, f"{panel.title}: say what the panel shows"


@pytest.mark.parametrize("query", QUERIES, ids=[q.name for q in QUERIES])
def test_query_uses_only_queuectl_metrics_rightly(query: PanelQuery) -> None:
    # No rate() over a gauge, no delta() over a counter, only catalogue metrics,
    # labels and label values, histogram_quantile keeps le.
    assert problems(substitute(query.expr)) == []


@pytest.mark.parametrize("query", QUERIES, ids=[q.name for q in QUERIES])
def test_queue_variable_filters_every_queue_metric(query: PanelQuery) -> None:
    # Keep $queue in its string literal: that is valid PromQL.
    expr = promql_parser.parse(substitute(query.expr, queue="$queue"))
    for selector in selectors(expr):
        name = selector_name(selector)
        assert name is not None
        base = base_metric(name)
        assert base is not None
        matchers = {(m.name, str(m.op), m.value) for m in selector.matchers.matchers}
        if "queue" in METRICS[base].labels:
            assert ("queue", "MatchOp.Re", "$queue") in matchers, f"{name} in {query.name}"


def test_every_metric_is_on_the_dashboard() -> None:
    used = {base_metric(selector_name(s) or "")
            for q in QUERIES for s in selectors(promql_parser.parse(substitute(q.expr)))}
    assert used == set(METRICS)


def test_rate_uses_grafanas_rate_interval() -> None:
    # rate() and increase() over $__rate_interval: never shorter than four scrapes.
    for query in QUERIES:
        for func in ("rate(", "increase("):
            if func in query.expr:
                assert "[$__rate_interval]" in query.expr, query.name
