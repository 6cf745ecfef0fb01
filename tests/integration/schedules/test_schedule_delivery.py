"""Schedules end to end: the whole service (dispatcher included) on a real PostgreSQL, delivering
each occurrence of a schedule to a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import itertools
from datetime import datetime

import asyncpg

from tests.support.app import ServiceFactory
from tests.support.polling import WAIT
from tests.support.receiver import Receiver, headers_of


async def test_every_second_schedule_delivers_consecutive_occurrences(
    service: ServiceFactory, receiver: Receiver, db: asyncpg.Connection
) -> None:
    async with service() as client:
        created = await client.post("/schedules", json={"cron": "* * * * * *", "url": receiver.url})
        assert created.status_code == 201, created.text
        schedule_id = created.json()["schedule_id"]
        assert await receiver.wait_for(lambda: len(receiver.deliveries) >= 4, WAIT)
        await client.delete(f"/schedules/{schedule_id}", params={"cancel_pending": "true"})

    occurrences = []
    for delivery in receiver.deliveries:
        headers = headers_of(delivery)
        assert headers["x-schedule-id"] == str(schedule_id)
        occurrence = datetime.fromisoformat(headers["x-schedule-occurrence"])
        assert delivery.body["schedule_id"] == schedule_id
        assert datetime.fromisoformat(delivery.body["occurrence_at"]) == occurrence
        # Never early.
        assert delivery.arrived_at >= occurrence.timestamp() - 0.001
        occurrences.append(occurrence)
    # Consecutive seconds, each once, each with its own webhook-id.
    assert len(set(occurrences)) == len(occurrences)
    ordered = sorted(occurrences)
    assert all((b - a).total_seconds() == 1 for a, b in itertools.pairwise(ordered))
    assert len({headers_of(d)["webhook-id"] for d in receiver.deliveries}) == len(receiver.deliveries)
    # Ended with the delete: no pending run is left behind.
    pending = await db.fetchval(
        "SELECT count(*) FROM timers WHERE schedule_id = $1 AND status = 'pending'", schedule_id
    )
    assert pending == 0
