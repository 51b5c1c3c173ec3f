"""Chaos tier: real worker and scheduler processes, real signals, a real Redis of each test's
own (AOF, ``appendfsync always``) that can be shut down and started again.

A package, like tests/integration, so that ``harness`` imports the same way under pytest,
mypy and scripts/soak.py.
"""
