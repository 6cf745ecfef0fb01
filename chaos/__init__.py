"""The chaos suite: real service processes, a real receiver and a PostgreSQL of its own, under
faults (kill -9, database restarts and outages, cut connections, a misbehaving receiver, skewed
clocks, a flood of creates), checked for lost, early and duplicated deliveries.

`make chaos` (`python -m chaos`) runs the full suite; tests/acceptance/test_chaos_short.py runs a
short version (`chaos.scenarios.short_suite`). See docs/reliability.md.
"""
