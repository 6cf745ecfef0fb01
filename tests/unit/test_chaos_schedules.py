"""The chaos suite's check of recurring schedules (chaos.schedules.check_occurrences): every
occurrence has exactly one run and one delivery, counted in the rows and at the receiver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chaos.analysis import Record
from chaos.schedules import Run, check_occurrences

T0 = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)


def run(timer_id: int, schedule_id: int, second: int) -> Run:
    occurrence = T0 + timedelta(seconds=second)
    return Run(
        {
            "id": timer_id,
            "status": "delivered",
            "created_at": occurrence - timedelta(seconds=1),
            "delivery_id": f"00000000-0000-0000-0000-{timer_id:012d}",
            "attempts": 1,
            "schedule_id": schedule_id,
            "occurrence_at": occurrence,
        }
    )


def delivery(timer_id: int, schedule_id: int, second: int, outcome: int = 200) -> Record:
    occurrence = T0 + timedelta(seconds=second)
    return Record(
        arrived=occurrence.timestamp() + 0.01,
        timer_id=timer_id,
        webhook_id=f"msg_{timer_id}",
        attempt=1,
        sent_at=int(occurrence.timestamp()),
        outcome=outcome,
        schedule_id=str(schedule_id),
        occurrence=occurrence.isoformat(),
    )


def expected(schedule_id: int, seconds: int) -> set[tuple[int, int]]:
    return {(schedule_id, round((T0 + timedelta(seconds=k)).timestamp() * 1000)) for k in range(seconds)}


def test_every_occurrence_once_is_no_problem() -> None:
    runs = [run(10 + k, 1, k) for k in range(3)]
    records = [delivery(10 + k, 1, k) for k in range(3)]
    problems, counts = check_occurrences(expected(1, 3), runs, records, [])
    assert problems == []
    assert counts.startswith("3 occurrences expected; rows: 3 with exactly one run, 0 missing, 0 doubled")
    assert "receiver: 3 delivered, 0 missing, 0 delivered twice" in counts


def test_missing_doubled_outside_undelivered_and_mismatched_are_problems() -> None:
    runs = [run(10, 1, 0), run(11, 1, 1), run(12, 1, 1), run(13, 1, 5)]
    records = [
        delivery(10, 1, 0),
        delivery(10, 1, 0),  # twice: counted, a crash window's business (chaos.analysis)
        delivery(11, 1, 1, outcome=503),
        delivery(12, 1, 0),  # headers naming another occurrence than its run's
    ]
    problems, counts = check_occurrences(expected(1, 3), runs, records, [10])
    assert [p.split(" (")[0] for p in problems] == [
        "1 occurrences without a run",
        "1 occurrences with more than one run",
        "1 runs outside the covered range",
        "2 occurrences never delivered",
        "1 requests whose schedule headers are not their run's",
    ]
    assert "1@2026-12-01T10:00:02+00:00" in problems[0]
    assert "1 delivered twice (1 of them inside a crash window" in counts
