"""`task-scheduler schedules ...` against the real app served on 127.0.0.1 (uvicorn in this process,
the command's main() in a thread, as an operator runs it); webhooks go to example.com, and the
dispatcher is off, so nothing fires while a test runs: what the commands did is read back through
the API with a plain HTTP client."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from task_scheduler.app import create_app
from task_scheduler.cli import main
from task_scheduler.config import Settings
from tests.support.app import served


@pytest.fixture
async def base_url(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    async with served(create_app(make_settings(), run_dispatcher=False)) as url:
        monkeypatch.setenv("TASK_SCHEDULER_URL", url)
        monkeypatch.delenv("TASK_SCHEDULER_API_KEY", raising=False)
        yield url


@pytest.fixture
async def api(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client, to check what the service really holds."""
    async with httpx.AsyncClient(base_url=base_url) as client:
        yield client


async def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`task-scheduler schedules <args>` in a thread (it runs its own event loop); (exit code, out, err)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["schedules", *args])
    out, err = capsys.readouterr()
    return code, out, err


def pairs(out: str) -> dict[str, str]:
    """The key/value table of `create` and `get`."""
    return dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in out.splitlines() if line.strip())


def table(out: str, header: list[str]) -> list[list[str]]:
    """The rows of a table; cells are apart by two spaces or more (a cron has single spaces)."""
    lines = [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()]
    assert lines[0] == header, out
    return lines[1:]


SCHEDULE_HEADER = ["ID", "STATUS", "CRON", "TIMEZONE", "NEXT_RUN", "RUNS", "URL"]
RUN_HEADER = ["TIMER_ID", "OCCURRENCE_AT", "STATUS", "DUE_AT", "ATTEMPTS", "DELIVERY_ID"]


async def test_create_with_every_flag_then_get(
    capsys: pytest.CaptureFixture[str], api: httpx.AsyncClient
) -> None:
    start = datetime.now(UTC) + timedelta(days=1)
    code, out, err = await run(
        capsys,
        *("create", "--cron", "0 9 * * 1-5", "--timezone", "Europe/Berlin"),
        *("--webhook", "http://example.com/daily", "--method", "put"),
        *("--header", "X-Team: ops", "--header", "Authorization: Bearer secret", "--body", '{"report": 1}'),
        *("--label", "team=ops", "--label", "kind=report", "--max-lateness", "300"),
        *("--start-at", start.isoformat(), "--end-at", (start + timedelta(days=30)).isoformat()),
        *("--max-runs", "10", "--jitter-seconds", "2.5", "--overlap", "skip"),
        *("--catchup", "all", "--catchup-window-seconds", "7200"),
    )
    assert (code, err) == (0, ""), err
    created = pairs(out)
    schedule_id = int(created["schedule_id"])
    assert created["status"] == "active"
    assert created["description"] == "at 09:00 on weekdays, Europe/Berlin"
    assert created["runs"] == "0/10"
    assert created["catchup"] == "all, window 7200 s"
    assert created["overlap"] == "skip"
    assert created["next_runs"].count(", ") == 4  # five of them, each in UTC and local time
    assert re.match(
        r"\d{4}-\d\d-\d\dT0[78]:00:00Z \(\d{4}-\d\d-\d\dT09:00:00\+0[12]:00\)", created["next_runs"]
    )

    view = (await api.get(f"/schedules/{schedule_id}")).json()
    assert (view["cron"], view["timezone"], view["method"], view["url"]) == (
        "0 9 * * 1-5",
        "Europe/Berlin",
        "PUT",
        "http://example.com/daily",
    )
    assert view["headers"] == {"X-Team": "ops", "Authorization": "[redacted]"}
    assert view["body"] == {"report": 1}
    assert view["labels"] == {"team": "ops", "kind": "report"}
    assert (view["max_runs"], view["jitter_seconds"], view["max_lateness_seconds"]) == (10, 2.5, 300)
    assert (view["overlap"], view["catchup"], view["catchup_window_seconds"]) == ("skip", "all", 7200)
    assert datetime.fromisoformat(view["start_at"]) == start

    code, out, err = await run(capsys, "get", str(schedule_id))
    assert (code, err) == (0, "")
    shown = pairs(out)
    assert (shown["schedule_id"], shown["cron"], shown["timezone"]) == (
        str(schedule_id),
        "0 9 * * 1-5",
        "Europe/Berlin",
    )
    assert shown["headers"] == "Authorization: [redacted]; X-Team: ops"
    assert shown["labels"] == "kind=report, team=ops"
    assert shown["body"] == '{"report": 1}'
    assert shown["max_lateness"] == "300 s"

    code, out, _ = await run(capsys, "get", str(schedule_id), "--json")
    assert code == 0
    assert json.loads(out) == (await api.get(f"/schedules/{schedule_id}")).json()

    # an alias is normalised, a body that is not JSON goes as a string; --json is the API's answer
    code, out, _ = await run(
        capsys, "create", "--cron", "@hourly", "--webhook", "http://example.com/h", "--body", "tick", "--json"
    )
    assert code == 0
    document = json.loads(out)
    assert (document["cron"], document["expression"], document["body"]) == ("0 * * * *", "@hourly", "tick")
    code, out, _ = await run(capsys, "get", str(document["schedule_id"]))
    assert pairs(out)["cron"] == "0 * * * * (given: @hourly)"


async def test_list_follows_the_cursor_and_filters_by_label(
    capsys: pytest.CaptureFixture[str], api: httpx.AsyncClient
) -> None:
    ids = []
    for i in range(7):
        body = {"cron": "*/5 * * * *", "url": f"http://example.com/{i}", "labels": {"batch": "a"}}
        ids.append((await api.post("/schedules", json=body)).json()["schedule_id"])
    other = (await api.post("/schedules", json={"cron": "@daily", "url": "http://example.com/b"})).json()

    code, out, err = await run(capsys, "list", "--label", "batch=a", "--limit", "3", "--all")
    assert (code, err) == (0, "")
    rows = table(out, SCHEDULE_HEADER)
    assert [int(row[0]) for row in rows] == ids
    assert {(row[1], row[3], row[5]) for row in rows} == {("active", "UTC", "0")}
    assert rows[2][-1] == "http://example.com/2"

    code, out, _ = await run(capsys, "list", "--label", "batch=a", "--limit", "3", "--all", "--json")
    document = json.loads(out)
    assert [s["schedule_id"] for s in document["schedules"]] == ids
    assert document["next_cursor"] is None

    # one page, with a hint that there is more; --cursor resumes
    code, out, err = await run(capsys, "list", "--label", "batch=a", "--limit", "3")
    assert code == 0
    assert [int(row[0]) for row in table(out, SCHEDULE_HEADER)] == ids[:3]
    assert err.startswith("task-scheduler: more schedules: use --all, or --cursor ")
    cursor = err.split("--cursor ")[1].strip()
    code, out, err = await run(capsys, "list", "--label", "batch=a", "--cursor", cursor, "--json")
    assert [s["schedule_id"] for s in json.loads(out)["schedules"]] == ids[3:]

    # --all stops at --max and says where to resume
    code, out, err = await run(capsys, "list", "--limit", "2", "--all", "--max", "5", "--json")
    assert len(json.loads(out)["schedules"]) == 5
    assert "stopped at --max 5" in err

    # every schedule without a filter; status; nothing matching
    code, out, _ = await run(capsys, "list", "--json")
    assert [s["schedule_id"] for s in json.loads(out)["schedules"]] == [*ids, other["schedule_id"]]
    assert (await run(capsys, "pause", str(ids[1])))[0] == 0
    code, out, _ = await run(capsys, "list", "--status", "paused")
    assert [(int(row[0]), row[4]) for row in table(out, SCHEDULE_HEADER)] == [(ids[1], "-")]
    code, out, _ = await run(capsys, "list", "--label", "batch=a", "--label", "other=x")
    assert (code, out) == (0, "no schedules\n")


async def test_pause_resume_trigger_backfill_delete(
    capsys: pytest.CaptureFixture[str], api: httpx.AsyncClient
) -> None:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    code, out, _ = await run(
        capsys,
        *("create", "--cron", "0 * * * *", "--webhook", "http://example.com/h"),
        *("--start-at", start.isoformat(), "--json"),
    )
    assert code == 0
    schedule_id = json.loads(out)["schedule_id"]

    code, out, err = await run(capsys, "pause", str(schedule_id))
    assert (code, out, err) == (0, f"schedule {schedule_id} is paused\n", "")
    code, out, err = await run(capsys, "pause", str(schedule_id))
    assert (code, out) == (1, "")
    assert re.fullmatch(rf"task-scheduler: 409 conflict: schedule {schedule_id} is paused[^\n]*\n", err), err

    code, out, err = await run(capsys, "resume", str(schedule_id))
    assert (code, err) == (0, "")
    assert re.fullmatch(
        rf"schedule {schedule_id} is active, next run \d{{4}}-\d\d-\d\dT\d\d:00:00Z\n", out
    ), out

    code, out, err = await run(capsys, "trigger", str(schedule_id))
    assert (code, err) == (0, "")
    match = re.fullmatch(
        rf"schedule {schedule_id}: run (\d+) is pending, due \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n", out
    )
    assert match, out
    triggered = (await api.get(f"/timer/{match[1]}")).json()
    assert triggered["status"] == "pending"

    # two past occurrences (whole hours) in the range, as runs due now
    code, out, err = await run(
        capsys,
        *("backfill", str(schedule_id), "--from", (start + timedelta(minutes=30)).isoformat()),
        *("--to", (start + timedelta(hours=2, minutes=30)).isoformat()),
    )
    assert (code, err) == (0, ""), err
    *listing, summary = out.splitlines()
    rows = table("\n".join(listing), RUN_HEADER)
    assert len(rows) == 2
    assert [row[1] for row in rows] == [
        (start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ") for h in (1, 2)
    ]
    assert summary == "created 2 runs; 0 occurrences of the range had one"
    code, out, _ = await run(
        capsys,
        *("backfill", str(schedule_id), "--from", start.isoformat()),
        *("--to", (start + timedelta(hours=2, minutes=30)).isoformat(), "--json"),
    )
    assert code == 0
    assert json.loads(out)["already_run"] == 2

    # the end: with --cancel-pending, no pending run of the series is left
    code, out, err = await run(capsys, "delete", str(schedule_id), "--cancel-pending")
    assert (code, out, err) == (0, f"schedule {schedule_id} is ended\n", "")
    runs = (await api.get(f"/schedules/{schedule_id}/runs", params={"limit": 100})).json()["runs"]
    series = [r for r in runs if r["occurrence_at"] is not None and r["status"] == "pending"]
    assert [r for r in series if r["due_at"] > datetime.now(UTC).isoformat()] == []
    code, out, _ = await run(capsys, "get", str(schedule_id), "--json")
    assert json.loads(out)["status"] == "ended"

    code, out, err = await run(capsys, "delete", "999999")
    assert (code, out) == (1, "")
    assert err == "task-scheduler: 404 not_found: schedule 999999 does not exist\n"


@pytest.mark.usefixtures("base_url")
async def test_the_service_refusals_are_the_envelope_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = await run(capsys, "create", "--cron", "61 * * * *", "--webhook", "http://example.com/")
    assert (code, out) == (1, "")
    assert err.startswith("task-scheduler: 422 validation_error: cron: field 1 (minute): 61 "), err

    code, out, err = await run(
        capsys, "create", "--cron", "@daily", "--timezone", "Mars/Olympus", "--webhook", "http://example.com/"
    )
    assert (code, out) == (1, "")
    assert err.startswith("task-scheduler: 422 validation_error: timezone: "), err

    code, out, err = await run(capsys, "create", "--cron", "@daily", "--webhook", "ftp://example.com/x")
    assert err == "task-scheduler: 422 validation_error: url: must be an absolute http:// or https:// URL\n"

    code, out, err = await run(capsys, "get", "999999")
    assert (code, out, err) == (1, "", "task-scheduler: 404 not_found: schedule 999999 does not exist\n")


@pytest.mark.parametrize(
    "args",
    [
        ["create", "--webhook", "http://example.com/"],
        ["create", "--cron", "@daily"],
        ["create", "--cron", "@daily", "--webhook", "http://example.com/", "--overlap", "never"],
        ["create", "--cron", "@daily", "--webhook", "http://example.com/", "--catchup", "some"],
        ["create", "--cron", "@daily", "--webhook", "http://example.com/", "--max-runs", "0"],
        [
            "create",
            "--cron",
            "@daily",
            "--webhook",
            "http://example.com/",
            "--start-at",
            "2030-01-01T00:00:00",
        ],
        ["create", "--cron", "@daily", "--webhook", "http://example.com/", "--jitter-seconds", "-1"],
        ["list", "--status", "sleeping"],
        ["list", "--limit", "1001"],
        ["get", "0"],
        ["backfill", "1", "--from", "2026-01-01T00:00:00Z"],
        ["backfill", "1", "--from", "yesterday", "--to", "2026-01-01T00:00:00Z"],
        ["pause"],
    ],
)
def test_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["schedules", *args])
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err
