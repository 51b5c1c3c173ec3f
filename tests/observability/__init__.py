"""Observability tier: the Grafana dashboard and the Prometheus rules in deploy/,
checked by promtool, decoded by Grafana's SDK and run against a real Prometheus."""
