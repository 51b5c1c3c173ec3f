"""Integration tier: real worker and scheduler processes against real Redis.

A package (unlike the other tiers) so that its helper module is imported as
``.procs`` both by pytest and by mypy, without any sys.path manipulation.
"""
