"""The destination-outage benchmark end to end, scaled down (the real one: `python -m
bench.destinations_outage`, 3 instances, 10,000 timers, a 60 s outage): two service processes, a
failing destination's timers held through the outage, everything delivered once after it, and
no attempt spent without a request."""

from __future__ import annotations

import argparse

import pytest

from bench import destinations_outage


async def test_a_short_outage_spends_no_attempt_without_a_request_and_loses_nothing(
    pg_server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(destinations_outage, "HEALTHY_TAIL_SECONDS", 2.0)
    args = argparse.Namespace(down=200, up=40, outage=3.0, instances=2, cooldown=1.0, backoff_cap=1.0)
    result = await destinations_outage.run(pg_server_url, args)
    assert result["breaker_then"] == "open"
    # the breaker held most of them: requests while down are those in flight when it opened and probes
    assert 0 < result["while_down"] < args.down
    assert result["attempts"] == result["requests"]
    assert (result["down_delivered"], result["down_doubled"]) == (args.down, 0)
    assert (result["up_delivered"], result["up_doubled"]) == (args.up, 0)
    assert len(result["lateness"]) == args.up
