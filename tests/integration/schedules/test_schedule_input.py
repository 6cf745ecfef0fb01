"""Property: no input to POST /schedules (and PATCH) produces a 500. Drawn: cron texts made of
cron tokens and hostile characters, zone names, boundary times, huge numbers, hostile delivery
fields. Every answer is a 201 that reads back, or a 4xx in the one error envelope.

SCHEDULE_EXAMPLES (default 30) examples per property."""

from __future__ import annotations

import os
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.api import URL, assert_envelope

EXAMPLES = int(os.environ.get("SCHEDULE_EXAMPLES", "30"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TOKENS = [
    "*",
    "*/15",
    "0",
    "59",
    "60",
    "1-5",
    "5-1",
    "MON",
    "jan",
    "L",
    "?",
    "/",
    ",",
    "-",
    "7",
    "32",
    "@daily",
]
cron_text = st.one_of(
    st.lists(st.sampled_from(TOKENS), min_size=1, max_size=7).map(" ".join),
    st.sampled_from(["@every 1s", "@every 0s", "@every 999999999d", "@every 1h30m", "@weekly", "@foo", ""]),
    st.text(max_size=20),
)
zones = st.one_of(
    st.sampled_from(["UTC", "Europe/Berlin", "Australia/Lord_Howe", "Etc/GMT+12", "utc", "", "/", "..", "Z"]),
    st.text(max_size=10),
)
times = st.one_of(
    st.none(),
    st.sampled_from(
        ["0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "2026-12-31T23:59:59+14:00", "9999-12-31T23:59:59Z"]
    ),
    st.text(max_size=10),
)
numbers = st.one_of(st.none(), st.sampled_from([0, -1, 1, 0.5, 2**63, 1e308, 10**30, "1", True]))
maybe = st.one_of(
    st.none(), st.text(max_size=8), st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2)
)


@st.composite
def schedule_input(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "cron": draw(cron_text),
        "url": draw(st.sampled_from([URL, "http://[::1", "x"])),
    }
    optional = {
        "timezone": zones,
        "start_at": times,
        "end_at": times,
        "max_runs": numbers,
        "jitter_seconds": numbers,
        "catchup_window_seconds": numbers,
        "max_lateness_seconds": numbers,
        "overlap": st.sampled_from(["allow", "skip", "buffer_one", "x", None]),
        "catchup": st.sampled_from(["latest", "all", "none", "x", None]),
        "headers": maybe,
        "labels": maybe,
        "body": maybe,
        "retry": st.one_of(st.none(), st.fixed_dictionaries({"timeout_seconds": numbers})),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            fields[name] = draw(strategy)
    return fields


async def test_no_schedule_input_makes_a_500(api: httpx.AsyncClient) -> None:
    @PROPERTY
    @given(schedule_input(), schedule_input())
    def run(created: dict[str, Any], edit: dict[str, Any]) -> None:
        # hypothesis drives a synchronous function: run the requests on the test's loop
        pending.append((created, edit))

    pending: list[tuple[dict[str, Any], dict[str, Any]]] = []
    run()
    for created, edit in pending:
        response = await api.post("/schedules", json=created)
        if response.status_code != 201:
            assert_envelope(response, (400, 409, 413, 415, 422))
            continue
        schedule_id = response.json()["schedule_id"]
        assert (await api.get(f"/schedules/{schedule_id}")).status_code == 200
        edit.pop("start_at", None)  # not editable: an unknown field
        edited = await api.patch(f"/schedules/{schedule_id}", json=edit)
        if edited.status_code != 200:
            assert_envelope(edited, (409, 422))
        for action in ("pause", "resume", "trigger"):
            answer = await api.post(f"/schedules/{schedule_id}/{action}")
            assert answer.status_code in (200, 201, 409), answer.text
        assert (await api.get(f"/schedules/{schedule_id}/runs")).status_code == 200
