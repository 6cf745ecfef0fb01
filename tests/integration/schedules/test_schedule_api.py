"""The schedule API on a real PostgreSQL (no dispatcher: nothing fires): the contract, every 4xx,
next_runs through DST changes, and no stray pending run after pause, resume, edit or delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.api import URL, assert_envelope, when


def refused(response: httpx.Response, status: int, field: str) -> dict[str, Any]:
    """The error envelope of a refusal (404, 409) naming `field` (the message need not)."""
    error = assert_envelope(response, status)
    assert error["field"] == field
    return error


async def make_schedule(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("/schedules", json={"cron": "0 9 * * 1-5", "url": URL, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def pending_runs(db: asyncpg.Connection, schedule_id: int) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT id, occurrence_at, due_at FROM timers WHERE schedule_id = $1 AND status = 'pending'",
        schedule_id,
    )


async def test_create_answers_the_normalised_expression_and_the_next_runs(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await api.post(
        "/schedules",
        json={"cron": "0 9 * * MON-FRI", "timezone": "Europe/Berlin", "url": URL, "labels": {"team": "ops"}},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/schedules/{body['schedule_id']}"
    assert response.headers["etag"]
    assert body["cron"] == "0 9 * * 1-5"
    assert body["expression"] == "0 9 * * MON-FRI"
    assert body["description"] == "at 09:00 on weekdays, Europe/Berlin"
    assert body["status"] == "active"
    assert body["overlap"] == "allow"
    assert body["catchup"] == "latest"
    assert body["runs"] == 0
    assert len(body["next_runs"]) == 5
    for run in body["next_runs"]:
        utc, local = when(run["utc"]), when(run["local"])
        assert utc == local
        assert utc.utcoffset() == timedelta(0)
        assert (local.hour, local.minute) == (9, 0)
        assert local.isoweekday() <= 5
    assert when(body["next_runs"][0]["utc"]) == when(body["next_occurrence_at"])
    # The next occurrence exists as a pending timer, visible through the timer API too.
    (run,) = await pending_runs(db, body["schedule_id"])
    assert run["occurrence_at"] == when(body["next_occurrence_at"])
    assert run["due_at"] == run["occurrence_at"]  # no jitter asked
    timer = (await api.get(f"/timer/{run['id']}")).json()
    assert timer["status"] == "pending"
    assert timer["labels"] == {"team": "ops"}
    assert (await api.get(f"/schedules/{body['schedule_id']}")).json() == body


@pytest.mark.parametrize(
    ("fields", "expected_utc"),
    [
        # Spring forward in Berlin (2027-03-28, 02:00-02:59 skipped): 02:30 runs at the end of the gap.
        (
            {"cron": "30 2 * * *", "timezone": "Europe/Berlin", "start_at": "2027-03-27T12:00:00Z"},
            ["2027-03-28T01:00:00+00:00", "2027-03-29T00:30:00+00:00"],
        ),
        # Fall back in Berlin (2027-10-31, 02:00-02:59 twice): 02:30 runs once, at its first instant.
        (
            {"cron": "30 2 * * *", "timezone": "Europe/Berlin", "start_at": "2027-10-30T12:00:00Z"},
            ["2027-10-31T00:30:00+00:00", "2027-11-01T01:30:00+00:00"],
        ),
        # New York springs forward on 2027-03-14: 02:00 does not exist, the run is at 03:00 EDT.
        (
            {"cron": "0 2 * * *", "timezone": "America/New_York", "start_at": "2027-03-13T12:00:00Z"},
            ["2027-03-14T07:00:00+00:00", "2027-03-15T06:00:00+00:00"],
        ),
        # Adelaide (+10:30 -> +09:30 on 2027-04-04): every 15 minutes stays 15 minutes apart.
        (
            {"cron": "*/15 * * * *", "timezone": "Australia/Adelaide", "start_at": "2027-04-03T16:10:00Z"},
            ["2027-04-03T16:15:00+00:00", "2027-04-03T16:30:00+00:00", "2027-04-03T16:45:00+00:00"],
        ),
    ],
    ids=["berlin-spring", "berlin-fall", "new-york-spring", "adelaide-fall"],
)
async def test_next_runs_follow_the_dst_rules(
    api: httpx.AsyncClient, fields: dict[str, Any], expected_utc: list[str]
) -> None:
    body = await make_schedule(api, **fields)
    utc = [when(r["utc"]) for r in body["next_runs"]]
    assert utc[: len(expected_utc)] == [when(e) for e in expected_utc]
    assert len(set(utc)) == len(utc)


async def test_next_runs_stop_at_end_at_and_max_runs(api: httpx.AsyncClient) -> None:
    start = datetime(2027, 1, 1, tzinfo=UTC)
    ended = await make_schedule(
        api, cron="@daily", start_at=start.isoformat(), end_at=(start + timedelta(days=2)).isoformat()
    )
    assert [when(r["utc"]) for r in ended["next_runs"]] == [
        start,
        start + timedelta(days=1),
        start + timedelta(days=2),
    ]
    capped = await make_schedule(api, cron="@hourly", max_runs=2)
    assert len(capped["next_runs"]) == 2


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"cron": "61 * * * *"}, "cron", "minute"),
        ({"cron": "* 25 * * *"}, "cron", "hour"),
        ({"cron": "* * *"}, "cron", "5 or 6 fields"),
        ({"cron": "@every 0s"}, "cron", "at least 1 second"),
        ({"cron": "0 0 30 2 *"}, "cron", "day"),
        ({"cron": "0 0 * * *\x00"}, "cron", "NUL"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "IANA"),
        ({"timezone": "../../etc/passwd"}, "timezone", "IANA"),
        ({"url": "ftp://example.com/"}, "url", "http"),
        ({"url": "http://127.1/"}, "url", "IPv4"),
        ({"headers": {"X-Schedule-Id": "1"}}, "headers", "set by the service"),
        ({"headers": {"X-Schedule-Occurrence": "x"}}, "headers", "set by the service"),
        ({"labels": {"": "x"}}, "labels", "label key"),
        ({"body": {"a": "\x00"}}, "body", "NUL"),
        ({"max_runs": 0}, "max_runs", "greater than"),
        ({"jitter_seconds": -1}, "jitter_seconds", "greater than"),
        ({"overlap": "sometimes"}, "overlap", "allow"),
        ({"catchup": "maybe"}, "catchup", "latest"),
        ({"catchup_window_seconds": 0}, "catchup_window_seconds", "greater than"),
        ({"start_at": "1969-12-31T23:59:59Z"}, "start_at", "1970"),
        ({"end_at": "2027-01-01"}, "end_at", "RFC 3339"),
        ({"retry": {"timeout_seconds": 3600}}, "retry.timeout_seconds", "lease"),
        ({"surprise": 1}, "surprise", "unknown field"),
        ({"end_at": "2020-01-01T00:00:00Z"}, "end_at", "no occurrence"),
        ({"start_at": "9999-12-31T23:00:01Z"}, "start_at", "no occurrence"),
        ({"start_at": "9000-01-01T00:00:00Z"}, "start_at", "maximum"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    api: httpx.AsyncClient, fields: dict[str, Any], field: str, words: str
) -> None:
    response = await api.post("/schedules", json={"cron": "@hourly", "url": URL, **fields})
    error = assert_envelope(response, 422, field)
    assert words in error["message"]


async def test_end_before_start_and_missing_fields(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/schedules",
        json={
            "cron": "@hourly",
            "url": URL,
            "start_at": "2027-01-02T00:00:00Z",
            "end_at": "2027-01-01T00:00:00Z",
        },
    )
    assert "end_at must be after start_at" in assert_envelope(response, 422)["message"]
    assert_envelope(await api.post("/schedules", json={"url": URL}), 422, "cron")
    assert_envelope(await api.post("/schedules", json={"cron": "@hourly"}), 422, "url")
    assert_envelope(
        await api.post("/schedules", content=b"[]", headers={"content-type": "application/json"}), 422
    )
    assert_envelope(await api.post("/schedules", content=b"x", headers={"content-type": "text/plain"}), 415)


async def test_unknown_schedule_is_404_everywhere(api: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/schedules/999"),
        ("DELETE", "/schedules/999"),
        ("POST", "/schedules/999/pause"),
        ("POST", "/schedules/999/resume"),
        ("POST", "/schedules/999/trigger"),
        ("GET", "/schedules/999/runs"),
    ]:
        refused(await api.request(method, path), 404, "schedule_id")
    refused(await api.patch("/schedules/999", json={"cron": "@daily"}), 404, "schedule_id")
    assert_envelope(await api.get("/schedules/0"), 422, "schedule_id")
    assert_envelope(await api.get(f"/schedules/{2**63}"), 422, "schedule_id")


async def test_list_is_paged_and_filtered_by_label(api: httpx.AsyncClient) -> None:
    ids = [
        (await make_schedule(api, labels={"team": "a" if i % 2 else "b"}))["schedule_id"] for i in range(5)
    ]
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/schedules", params=params)).json()
        seen += [s["schedule_id"] for s in page["schedules"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    team_a = (await api.get("/schedules", params={"label": "team:a"})).json()["schedules"]
    assert [s["schedule_id"] for s in team_a] == ids[1::2]
    assert_envelope(await api.get("/schedules", params={"label": "nocolon"}), 422, "label")
    assert_envelope(await api.get("/schedules", params={"cursor": "abc"}), 422, "cursor")
    assert_envelope(await api.get("/schedules", params={"status": "sleeping"}), 422, "status")
    active = (await api.get("/schedules", params={"status": "active"})).json()["schedules"]
    assert len(active) == 5


async def test_edit_with_if_match_recomputes_the_pending_run(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    created = await make_schedule(api, cron="0 9 * * *", timezone="UTC")
    schedule_id = created["schedule_id"]
    path = f"/schedules/{schedule_id}"
    etag = (await api.get(path)).headers["etag"]
    refused(await api.patch(path, json={"cron": "0 10 * * *"}, headers={"If-Match": '"1"'}), 412, "If-Match")
    refused(await api.patch(path, json={"cron": "0 10 * * *"}, headers={"If-Match": "nope"}), 412, "If-Match")
    assert_envelope(await api.patch(path, json={"cron": "0 10 * * 8"}), 422, "cron")
    assert_envelope(await api.patch(path, json={"timezone": "Nowhere"}), 422, "timezone")
    edited = await api.patch(
        path, json={"cron": "0 10 * * *", "timezone": "Asia/Tokyo"}, headers={"If-Match": etag}
    )
    assert edited.status_code == 200, edited.text
    view = edited.json()
    assert edited.headers["etag"] != etag
    assert view["cron"] == "0 10 * * *"
    assert view["description"] == "at 10:00 every day, Asia/Tokyo"
    (run,) = await pending_runs(db, schedule_id)
    assert run["occurrence_at"] == when(view["next_occurrence_at"])
    assert run["occurrence_at"].astimezone(when(view["next_runs"][0]["local"]).tzinfo).hour == 10
    cancelled = await db.fetchval(
        "SELECT count(*) FROM timers WHERE schedule_id = $1 AND status = 'cancelled'", schedule_id
    )
    assert cancelled == 1
    # A change of the delivery fields remakes the pending run with them, at the same occurrence.
    relabelled = (await api.patch(path, json={"labels": {"v": "2"}, "body": {"hello": 1}})).json()
    assert relabelled["next_occurrence_at"] == view["next_occurrence_at"]
    (remade,) = await pending_runs(db, schedule_id)
    assert remade["occurrence_at"] == run["occurrence_at"]
    timer = (await api.get(f"/timer/{remade['id']}")).json()
    assert (timer["labels"], timer["body"]) == ({"v": "2"}, {"hello": 1})
    # An end_at before the next occurrence ends the schedule, and leaves no pending run.
    ended = (await api.patch(path, json={"end_at": "2026-01-01T00:00:00Z"})).json()
    assert ended["status"] == "ended"
    assert await pending_runs(db, schedule_id) == []
    refused(await api.patch(path, json={"cron": "@daily"}), 409, "status")


async def test_pause_resume_and_delete_leave_no_stray_run(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    created = await make_schedule(api, cron="@hourly")
    schedule_id = created["schedule_id"]
    path = f"/schedules/{schedule_id}"
    (first,) = await pending_runs(db, schedule_id)

    paused = (await api.post(f"{path}/pause")).json()
    assert paused["status"] == "paused"
    assert await pending_runs(db, schedule_id) == []
    refused(await api.post(f"{path}/pause"), 409, "status")

    resumed = (await api.post(f"{path}/resume")).json()
    assert resumed["status"] == "active"
    (again,) = await pending_runs(db, schedule_id)
    assert again["occurrence_at"] == first["occurrence_at"]
    assert again["id"] != first["id"]
    refused(await api.post(f"{path}/resume"), 409, "status")

    # DELETE without the flag ends the schedule; its pending run still fires (and makes no next).
    ended = (await api.delete(path)).json()
    assert ended["status"] == "ended"
    assert ended["next_runs"] == []
    assert len(await pending_runs(db, schedule_id)) == 1
    assert (await api.delete(path, params={"cancel_pending": "true"})).json()["status"] == "ended"
    assert await pending_runs(db, schedule_id) == []
    refused(await api.post(f"{path}/resume"), 409, "status")
    refused(await api.post(f"{path}/trigger"), 409, "status")
    assert_envelope(await api.delete(path, params={"cancel_pending": "perhaps"}), 422, "cancel_pending")


async def test_trigger_adds_one_run_outside_the_series(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    created = await make_schedule(api, cron="@daily")
    schedule_id = created["schedule_id"]
    triggered = await api.post(f"/schedules/{schedule_id}/trigger")
    assert triggered.status_code == 201, triggered.text
    run = triggered.json()
    assert run["occurrence_at"] is None
    assert run["status"] == "pending"
    runs = (await api.get(f"/schedules/{schedule_id}/runs")).json()
    assert runs["runs"][0]["timer_id"] == run["timer_id"]  # newest first
    assert len(runs["runs"]) == 2
    assert runs["next_cursor"] is None
    first_page = (await api.get(f"/schedules/{schedule_id}/runs", params={"limit": 1})).json()
    assert first_page["runs"] == runs["runs"][:1]
    rest = (
        await api.get(f"/schedules/{schedule_id}/runs", params={"cursor": first_page["next_cursor"]})
    ).json()
    assert rest["runs"] == runs["runs"][1:]
    # Not counted as a run of the series, and the series' next run is still the only one.
    assert (await api.get(f"/schedules/{schedule_id}")).json()["runs"] == 0
    assert len(await pending_runs(db, schedule_id)) == 2
    assert_envelope(await api.get(f"/schedules/{schedule_id}/runs", params={"cursor": "-1"}), 422, "cursor")


async def test_backfill_makes_the_missing_runs_of_a_past_range_once(api: httpx.AsyncClient) -> None:
    schedule_id = (await make_schedule(api, cron="@hourly"))["schedule_id"]
    path = f"/schedules/{schedule_id}/backfill"
    now = datetime.now(UTC)
    start = (now - timedelta(hours=5)).replace(minute=0, second=0, microsecond=0)
    span = {"from": start.isoformat(), "to": (start + timedelta(hours=4)).isoformat()}
    made = await api.post(path, json=span)
    assert made.status_code == 201, made.text
    body = made.json()
    assert [when(r["occurrence_at"]) for r in body["runs"]] == [start + timedelta(hours=h) for h in range(5)]
    assert {r["status"] for r in body["runs"]} == {"pending"}
    assert body["already_run"] == 0
    again = (await api.post(path, json=span)).json()
    assert (again["runs"], again["already_run"]) == ([], 5)
    assert (await api.get(f"/schedules/{schedule_id}")).json()["runs"] == 0  # not runs of the cursor
    future = {"from": start.isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
    assert_envelope(await api.post(path, json=future), 422, "to")
    assert_envelope(await api.post(path, json={"from": span["to"], "to": span["from"]}), 422)
    assert_envelope(
        await api.post(path, json={"from": "2020-01-01T00:00:00Z", "to": span["to"]}), 422, "from"
    )
    assert_envelope(await api.post(path, json={"from": "yesterday", "to": span["to"]}), 422, "from")
    assert_envelope(await api.post(path, json={"to": span["to"]}), 422, "from")
    refused(await api.post("/schedules/999/backfill", json=span), 404, "schedule_id")
    await api.delete(f"/schedules/{schedule_id}")
    refused(await api.post(path, json=span), 409, "status")


async def test_cancelling_the_pending_run_skips_that_occurrence_only(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    created = await make_schedule(api, cron="@hourly")
    schedule_id = created["schedule_id"]
    (run,) = await pending_runs(db, schedule_id)
    assert (await api.delete(f"/timer/{run['id']}")).json()["status"] == "cancelled"
    # The series goes on from the next occurrence: one pending run, an hour later.
    (following,) = await pending_runs(db, schedule_id)
    assert following["occurrence_at"] == run["occurrence_at"] + timedelta(hours=1)
    view = (await api.get(f"/schedules/{schedule_id}")).json()
    assert when(view["next_occurrence_at"]) == following["occurrence_at"]
    assert (view["status"], view["runs"]) == ("active", 0)
    # A triggered run cancelled is just cancelled.
    triggered = (await api.post(f"/schedules/{schedule_id}/trigger")).json()
    assert (await api.delete(f"/timer/{triggered['timer_id']}")).status_code == 200
    assert [r["id"] for r in await pending_runs(db, schedule_id)] == [following["id"]]
