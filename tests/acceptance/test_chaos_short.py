"""The chaos suite, short (`make chaos` is the long one): three real instances, a real receiver
process and ~2,000 timers due over 15 s, under kill -9, server-side connection terminations, a
receiver that answers 503 and resets connections, and hostile data (a receiver answering every
request badly, boundary-value creates). No speed is asserted, only the invariants."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.report import details, table
from chaos.scenarios import Scenario, run_scenario, short_suite

pytestmark = pytest.mark.acceptance

TIMERS = 2000
SPREAD_SECONDS = 15.0


@pytest.mark.parametrize("scenario", short_suite(), ids=lambda s: s.name)
async def test_chaos_short(scenario: Scenario, database_url: str, tmp_path: Path) -> None:
    result = await run_scenario(
        scenario, database_url=database_url, workdir=tmp_path, timers=TIMERS, spread=SPREAD_SECONDS
    )
    report = f"{table([result])}\n\n{details(result)}\nlogs: {tmp_path}"
    print(report)
    assert result.faults, f"no fault was injected\n{report}"
    assert result.timers >= TIMERS
    assert result.lost == [], f"lost timers\n{report}"
    assert result.early == [], f"timers delivered before their due time\n{report}"
    assert result.dup_outside == [], f"duplicates outside crash windows\n{report}"
    assert result.webhook_id_mismatch == [], f"a timer delivered under two webhook-ids\n{report}"
    assert result.unknown == [], f"deliveries of timers never stored\n{report}"
    assert result.state_mismatch == [], f"a 2xx answered, the row not delivered\n{report}"
    assert result.hostile_problems == [], f"hostile data got through\n{report}"
    assert result.passed
