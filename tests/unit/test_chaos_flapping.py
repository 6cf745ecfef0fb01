"""The flapping scenario's breaker check (chaos.flapping): attempts after the settle time of a
down period are probes, at most one per cool-down (one more per instance killed meanwhile)."""

from __future__ import annotations

from chaos.faults import FLAPPING, Fault
from chaos.flapping import FailedAttempt, breaker_problems


def failed(*starts: float) -> list[FailedAttempt]:
    return [
        FailedAttempt(timer_id=n, attempt=1, started_at=at, error_class="connection")
        for n, at in enumerate(starts)
    ]


DOWN = Fault(f"{FLAPPING} down 6.0 s", 100.0, 106.0)


def test_probes_one_per_cooldown_after_the_settle_time_pass() -> None:
    # five failures open it at once; probes at 104.0 and 105.5 (window ends at 106: up to 2 allowed)
    problems, notes = breaker_problems(
        failed(100.1, 100.1, 100.2, 100.2, 100.3, 104.0, 105.5), [DOWN], cooldown=1.5, settle=3.0
    )
    assert problems == []
    assert notes == [
        f"{DOWN.kind}: 7 attempts failed, 2 of them from 3 s after the first (probes allowed: 2)"
    ]


def test_attempts_beyond_the_probes_are_a_violation() -> None:
    problems, _ = breaker_problems(
        failed(100.1, 103.5, 103.6, 104.0, 105.0), [DOWN], cooldown=1.5, settle=3.0
    )
    assert len(problems) == 1
    assert "4 attempts while its breaker should hold, at most 2 probes allowed" in problems[0]


def test_a_kill_in_the_window_allows_one_more_probe_and_other_faults_are_not_windows() -> None:
    kill = Fault("kill -9", 104.2, 104.2, "i1.1 (pid 7) held 3")
    elsewhere = Fault("receiver down 30 s", 0.0, 200.0)
    problems, notes = breaker_problems(
        failed(100.1, 103.5, 104.0, 105.0), [DOWN, kill, elsewhere], cooldown=1.5, settle=3.0
    )
    assert problems == []
    assert notes == [
        f"{DOWN.kind}: 4 attempts failed, 3 of them from 3 s after the first (probes allowed: 3)"
    ]


def test_a_down_period_without_failures_is_noted() -> None:
    problems, notes = breaker_problems([], [DOWN], cooldown=1.5, settle=3.0)
    assert problems == []
    assert notes == [f"{DOWN.kind}: no attempt failed (the breaker was open before it began)"]
