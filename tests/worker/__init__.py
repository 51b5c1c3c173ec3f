"""Worker tier: the executor and output capture in-process, with real processes (no Redis).

A package, like the integration tier, so that ``.helpers`` imports the same way
for pytest and mypy.
"""
