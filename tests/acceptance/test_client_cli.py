"""`task-scheduler timers ...` against a real service process, in-process (main() in a thread) and as
a subprocess; webhooks go to example.com hours ahead, so nothing fires while a test runs."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from task_scheduler.cli import main
from task_scheduler.client import parse_duration
from tests.support.processes import ServiceProcess, free_port
from tests.support.receiver import Receiver, always

pytestmark = pytest.mark.acceptance


@pytest.fixture
async def service(spawn: Callable[..., ServiceProcess], monkeypatch: pytest.MonkeyPatch) -> ServiceProcess:
    proc = spawn()
    await proc.wait_ready()
    monkeypatch.setenv("TASK_SCHEDULER_URL", proc.base_url)
    monkeypatch.delenv("TASK_SCHEDULER_API_KEY", raising=False)
    return proc


@pytest.fixture
async def api(service: ServiceProcess) -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client, to check what the service really holds."""
    async with aiohttp.ClientSession(base_url=service.base_url) as session:
        yield session


async def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`task-scheduler timers <args>` in a thread (it runs its own event loop); (exit code, out, err)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["timers", *args])
    out, err = capsys.readouterr()
    return code, out, err


def pairs(out: str) -> dict[str, str]:
    """The key/value table of `create` and `get`."""
    return dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in out.splitlines() if line.strip())


def table_ids(out: str) -> list[int]:
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "DUE_AT", "TIME_LEFT", "ATTEMPTS", "URL"]
    return [int(line.split()[0]) for line in lines[1:]]


def in_hours(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


async def count_timers(api: aiohttp.ClientSession, label: str) -> int:
    count, cursor = 0, None
    for _ in range(100):
        params = {"label": label, "limit": "1000", **({"cursor": cursor} if cursor else {})}
        async with api.get("/timers", params=params) as response:
            assert response.status == 200, await response.text()
            page = await response.json()
        count += len(page["timers"])
        cursor = page["next_cursor"]
        if cursor is None:
            return count
    raise AssertionError("more than 100 pages")


async def test_create_with_in_and_at_then_get(
    capsys: pytest.CaptureFixture[str], api: aiohttp.ClientSession
) -> None:
    code, out, err = await run(capsys, "create", "--in", "1h30m45s", "--webhook", "http://example.com/a")
    assert (code, err) == (0, "")
    created = pairs(out)
    assert re.fullmatch(r"1h30m(4[0-5])s", created["time_left"]), out
    first_id = int(created["timer_id"])

    due = in_hours(2)
    code, out, err = await run(
        capsys,
        "create",
        "--at",
        due,
        "--webhook",
        "http://example.com/b",
        "--method",
        "put",
        "--header",
        "X-Tenant: acme",
        "--header",
        "Authorization: Bearer secret",
        "--body",
        '{"order": 7}',
        "--label",
        "customer=42",
        "--label",
        "kind=reminder",
        "--max-lateness",
        "300",
        "--idempotency-key",
        "order-7",
        "--json",
    )
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert 7190 <= document["time_left"] <= 7200
    second_id = document["timer_id"]
    assert second_id != first_id

    async with api.get(f"/timer/{second_id}") as response:
        view = await response.json()
    assert view["status"] == "pending"
    assert view["url"] == "http://example.com/b"
    assert view["method"] == "PUT"
    assert view["headers"] == {"X-Tenant": "acme", "Authorization": "[redacted]"}
    assert view["body"] == {"order": 7}
    assert view["labels"] == {"customer": "42", "kind": "reminder"}
    assert datetime.fromisoformat(view["deliver_before"]) - datetime.fromisoformat(
        view["due_at"]
    ) == timedelta(seconds=300)

    # the same idempotency key and request: the same timer, and the table says it is a replay
    code, out, _ = await run(
        capsys,
        *("create", "--at", due, "--webhook", "http://example.com/b", "--method", "PUT"),
        *("--header", "X-Tenant: acme", "--header", "Authorization: Bearer secret", "--body", '{"order": 7}'),
        *("--label", "customer=42", "--label", "kind=reminder", "--max-lateness", "300"),
        *("--idempotency-key", "order-7"),
    )
    assert code == 0
    assert pairs(out)["timer_id"] == str(second_id)
    assert "idempotent replay" in out

    # a body that is not JSON goes as a string; plain seconds work for --in
    code, out, _ = await run(
        capsys, "create", "--in", "7200", "--webhook", "http://example.com/c", "--body", "not json", "--json"
    )
    assert code == 0
    async with api.get(f"/timer/{json.loads(out)['timer_id']}") as response:
        assert (await response.json())["body"] == "not json"

    code, out, err = await run(capsys, "get", str(second_id))
    assert (code, err) == (0, "")
    shown = pairs(out)
    assert shown["status"] == "pending"
    assert shown["url"] == "http://example.com/b"
    assert shown["method"] == "PUT"
    assert shown["labels"] == "customer=42, kind=reminder"
    assert shown["body"] == '{"order": 7}'
    assert shown["headers"] == "Authorization: [redacted]; X-Tenant: acme"
    assert re.fullmatch(r"1h59m\d+s|2h", shown["time_left"]), shown

    code, out, _ = await run(capsys, "get", str(first_id), "--json")
    assert code == 0
    assert json.loads(out)["url"] == "http://example.com/a"

    code, out, err = await run(capsys, "get", "999999")
    assert (code, out) == (1, "")
    assert err == "task-scheduler: 404 not_found: timer 999999 does not exist\n"


@pytest.mark.usefixtures("service")
async def test_validation_error_is_the_envelope_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = await run(capsys, "create", "--in", "1h", "--webhook", "ftp://example.com/x")
    assert (code, out) == (1, "")
    assert err == "task-scheduler: 422 validation_error: url: must be an absolute http:// or https:// URL\n"


async def test_list_filters_and_all_pages(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, api: aiohttp.ClientSession
) -> None:
    source = tmp_path / "timers.jsonl"
    lines = [
        json.dumps({"hours": 2, "minutes": i, "url": f"http://example.com/{i}", "labels": {"batch": "a"}})
        for i in range(25)
    ]
    lines += [json.dumps({"hours": 5, "url": "http://example.com/b", "labels": {"batch": "b"}})] * 3
    source.write_text("\n".join(lines) + "\n")
    code, out, _ = await run(capsys, "import", str(source))
    assert code == 0
    assert out.startswith("created 28, failed 0 in ")

    code, out, err = await run(capsys, "list", "--label", "batch=a", "--limit", "10", "--all")
    assert (code, err) == (0, "")
    ids = table_ids(out)
    assert len(ids) == len(set(ids)) == 25

    code, out, _ = await run(capsys, "list", "--label", "batch=a", "--limit", "10", "--all", "--json")
    document = json.loads(out)
    assert [t["timer_id"] for t in document["timers"]] == ids  # ordered by due time
    assert document["next_cursor"] is None

    # one page, with a hint that there is more
    code, out, err = await run(capsys, "list", "--label", "batch=a", "--limit", "10")
    assert code == 0
    assert table_ids(out) == ids[:10]
    assert err.startswith("task-scheduler: more timers: use --all, or --cursor ")

    # --all stops at --max, and says where to resume
    code, out, err = await run(
        capsys, "list", "--label", "batch=a", "--limit", "10", "--all", "--max", "12", "--json"
    )
    document = json.loads(out)
    assert [t["timer_id"] for t in document["timers"]] == ids[:12]
    assert document["next_cursor"] is not None
    assert "stopped at --max 12" in err
    code, out, _ = await run(
        capsys, "list", "--label", "batch=a", "--limit", "100", "--cursor", document["next_cursor"], "--json"
    )
    assert [t["timer_id"] for t in json.loads(out)["timers"]] == ids[12:]

    # due_after/due_before, status and several labels
    code, out, _ = await run(capsys, "list", "--due-after", in_hours(4), "--json")
    assert {t["labels"]["batch"] for t in json.loads(out)["timers"]} == {"b"}
    code, out, _ = await run(capsys, "list", "--due-before", in_hours(4), "--label", "batch=a", "--json")
    assert len(json.loads(out)["timers"]) == 25
    assert (await run(capsys, "cancel", str(ids[3])))[0] == 0
    code, out, _ = await run(capsys, "list", "--status", "cancelled")
    assert table_ids(out) == [ids[3]]
    row = out.splitlines()[1].split()
    assert row[1] == "cancelled"
    assert row[-1] == "http://example.com/3"
    code, out, _ = await run(capsys, "list", "--label", "batch=a", "--label", "other=x")
    assert (code, out) == (0, "no timers\n")

    # long URLs are cut to fit the table
    long_url = "http://example.com/" + "x" * 200
    await run(capsys, "create", "--in", "3h", "--webhook", long_url, "--label", "batch=long")
    code, out, _ = await run(capsys, "list", "--label", "batch=long")
    assert out.splitlines()[1].endswith("http://example.com/" + "x" * 38 + "...")


@pytest.mark.usefixtures("service")
async def test_cancel_twice_and_retry_a_pending_timer(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = await run(capsys, "create", "--in", "2h", "--webhook", "http://example.com/c", "--json")
    timer_id = json.loads(out)["timer_id"]

    code, out, err = await run(capsys, "retry", str(timer_id))
    assert (code, out) == (1, "")
    assert err == (
        f"task-scheduler: 409 conflict: timer {timer_id} is pending and cannot be retried "
        "(only failed or expired timers can be)\n"
    )

    code, out, err = await run(capsys, "cancel", str(timer_id))
    assert (code, out, err) == (0, f"timer {timer_id} is cancelled\n", "")

    code, out, err = await run(capsys, "cancel", str(timer_id))
    assert (code, out) == (1, "")
    assert err == f"task-scheduler: 409 conflict: timer {timer_id} is cancelled and cannot be cancelled\n"

    code, out, _ = await run(capsys, "cancel", str(timer_id), "--json")
    assert code == 1

    code, out, err = await run(capsys, "replay", str(timer_id), "--in", "1h")
    assert (code, err) == (0, "")
    match = re.fullmatch(
        rf"timer (\d+) replays timer {timer_id}, due \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n", out
    )
    assert match, out
    replay_id = match.group(1)
    code, out, _ = await run(capsys, "get", replay_id, "--json")
    assert (json.loads(out)["replay_of"], json.loads(out)["url"]) == (timer_id, "http://example.com/c")
    code, out, err = await run(capsys, "replay", replay_id)
    assert (code, out) == (1, "")
    assert f"409 conflict: timer {replay_id} is pending and cannot be replayed" in err


@pytest.mark.usefixtures("service")
async def test_bulk_reschedule_with_a_dry_run_then_its_status(capsys: pytest.CaptureFixture[str]) -> None:
    ids = []
    for _ in range(3):
        code, out, _ = await run(
            capsys, "create", "--in", "2h", "--webhook", "http://example.com/b", "--label", "wave=1", "--json"
        )
        ids.append(json.loads(out)["timer_id"])
    filter_args = ["--status", "pending", "--label", "wave=1", "--host", "example.com"]
    code, out, err = await run(
        capsys, "bulk", "--action", "reschedule", "--offset=-1h", *filter_args, "--dry-run"
    )
    assert (code, out, err) == (0, "reschedule would take 3 timers\n", "")
    for destination, taken in (("http://example.com:80", 3), ("http://example.com", 0)):
        code, out, err = await run(
            capsys, "bulk", "--action", "cancel", "--destination", destination, "--dry-run"
        )
        assert (code, out, err) == (0, f"cancel would take {taken} timers\n", "")

    code, out, err = await run(capsys, "bulk", "--action", "reschedule", "--offset=-1h", *filter_args)
    assert (code, err) == (0, "")
    *table, hint = out.splitlines()
    shown = pairs("\n".join(table))
    assert (shown["state"], shown["action"], shown["offset_seconds"]) == ("queued", "reschedule", "-3600")
    assert hint == f"follow it: task-scheduler timers bulk-status {shown['job_id']}"
    for _ in range(200):
        code, out, _ = await run(capsys, "bulk-status", shown["job_id"], "--json")
        if json.loads(out)["state"] == "done":
            break
        await asyncio.sleep(0.05)
    code, out, _ = await run(capsys, "bulk-status", shown["job_id"])
    status = pairs(out)
    assert (status["state"], status["matched"], status["done"], status["skipped"]) == ("done", "3", "3", "0")
    for timer_id in ids:
        code, out, _ = await run(capsys, "get", str(timer_id), "--json")
        assert 3500 < json.loads(out)["time_left"] <= 3600

    code, out, err = await run(capsys, "bulk-cancel", shown["job_id"])
    assert (code, out) == (1, "")
    assert f"409 conflict: bulk job {shown['job_id']} is done and cannot be cancelled" in err
    code, out, err = await run(capsys, "bulk", "--action", "cancel", "--status", "failed")
    assert code == 1
    assert "field filter.status" in err or "filter.status" in err


@pytest.mark.usefixtures("service")
async def test_retry_a_failed_timer(capsys: pytest.CaptureFixture[str], receiver: Receiver) -> None:
    receiver.respond = always(410)  # Gone: the timer fails at the first attempt
    code, out, _ = await run(capsys, "create", "--in", "0", "--webhook", receiver.url, "--json")
    assert code == 0
    timer_id = json.loads(out)["timer_id"]
    for _ in range(150):
        code, out, _ = await run(capsys, "get", str(timer_id), "--json")
        if json.loads(out)["status"] == "failed":
            break
        await asyncio.sleep(0.1)
    code, out, _ = await run(capsys, "get", str(timer_id))
    shown = pairs(out)
    assert (shown["status"], shown["attempts"]) == ("failed", "1")
    assert "410" in shown["last_error"]

    code, out, err = await run(capsys, "retry", str(timer_id))
    assert (code, err) == (0, "")
    assert re.fullmatch(rf"timer {timer_id} is pending again, due \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n", out)


async def test_an_answer_from_something_else(capsys: pytest.CaptureFixture[str], receiver: Receiver) -> None:
    url = f"http://127.0.0.1:{receiver.port}"
    code, out, err = await run(capsys, "get", "1", "--url", url)
    assert (code, out) == (1, "")
    assert (
        err
        == f"task-scheduler: unexpected answer from {url}/timer/1 (HTTP 200): is this a task-scheduler service?\n"
    )

    receiver.respond = always(502)
    code, out, err = await run(capsys, "cancel", "1", "--url", url + "/")
    assert (code, out, err) == (1, "", "task-scheduler: 502 bad_gateway: nope\n")


async def test_import_reports_bad_lines_and_goes_on(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, api: aiohttp.ClientSession
) -> None:
    good = [
        json.dumps({"hours": 3, "seconds": i, "url": f"http://example.com/{i}", "labels": {"run": "big"}})
        for i in range(2500)
    ]
    lines = [
        *good[:9],
        "{not json",
        *good[9:1400],
        "",
        json.dumps({"hours": 3, "url": "ftp://x"}),
        *good[1400:],
    ]
    lines.insert(700, "   ")
    lines.insert(800, "[1, 2]")  # JSON, but not a timer
    source = tmp_path / "big.jsonl"
    source.write_text("\n".join(lines) + "\n")
    bad_json_line = lines.index("{not json") + 1
    array_line = lines.index("[1, 2]") + 1
    ftp_line = next(n for n, line in enumerate(lines, start=1) if "ftp://" in line)
    # items in file order, skipping blank and unsendable lines: the ftp item is in the second chunk
    item_lines = [
        n for n, line in enumerate(lines, start=1) if line.strip().startswith("{") and n != bad_json_line
    ]
    assert len(item_lines) == 2501
    second_chunk = item_lines[1000:2000]
    assert ftp_line in second_chunk

    code, out, err = await run(capsys, "import", str(source))
    assert code == 1
    assert re.fullmatch(r"created 1501, failed 1002 in \d+\.\d\d s \(\d+ timers/s\)\n", out), out
    assert f"task-scheduler: line {bad_json_line}: not valid JSON (" in err
    assert f"task-scheduler: line {array_line}: not a JSON object\n" in err
    assert (
        f"task-scheduler: lines {second_chunk[0]}-{second_chunk[-1]} not created: 422 validation_error: "
        f"line {ftp_line}: url: must be an absolute http:// or https:// URL\n"
    ) in err
    assert "2503/2503 lines (100%)" in err  # the last progress line
    assert await count_timers(api, "run:big") == 1501

    # the same with --json: a summary document
    source.write_text(good[0] + "\n\n" + good[1] + "\n")
    code, out, _ = await run(capsys, "import", str(source), "--json")
    assert code == 0
    summary = json.loads(out)
    assert (summary["created"], summary["failed"], summary["unknown"]) == (2, 0, 0)
    assert await count_timers(api, "run:big") == 1503

    code, out, err = await run(capsys, "import", str(tmp_path / "missing.jsonl"))
    assert (code, out) == (1, "")
    assert err.startswith("task-scheduler: cannot read ")


async def test_subprocess_import_from_stdin_with_an_api_key(
    spawn: Callable[..., ServiceProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    admin_key = "k" * 40
    proc = spawn(SCHEDULER_ADMIN_API_KEY=admin_key)
    await proc.wait_ready()
    lines = "".join(json.dumps({"hours": 1, "url": f"http://example.com/{i}"}) + "\n" for i in range(3))

    def import_stdin(key: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "task_scheduler", "timers", "import", "-"],
            input=lines,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "TASK_SCHEDULER_URL": proc.base_url, "TASK_SCHEDULER_API_KEY": key},
            check=False,
        )

    # a key exists, so protected mode is off: without one, the API's 401 and exit 1
    refused = await asyncio.to_thread(import_stdin, "")
    assert refused.returncode == 1
    assert "task-scheduler: lines 1-3 not created: 401 unauthorized: " in refused.stderr
    assert refused.stdout.startswith("created 0, failed 3 in ")

    done = await asyncio.to_thread(import_stdin, admin_key)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("created 3, failed 0 in ")

    code, out, _ = await run(capsys, "list", "--json", "--url", proc.base_url, "--api-key", admin_key)
    assert code == 0
    assert len(json.loads(out)["timers"]) == 3


async def test_connection_refused_names_the_url(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = await run(capsys, "get", "1", "--url", url)
    assert (code, out) == (1, "")
    assert err == (
        f"task-scheduler: cannot connect to {url} (connection refused; is the service running?) "
        "(set --url or TASK_SCHEDULER_URL)\n"
    )

    source = tmp_path / "few.jsonl"
    source.write_text(
        "".join(json.dumps({"hours": 1, "url": "http://example.com/"}) + "\n" for _ in range(3))
    )
    code, out, err = await run(capsys, "import", str(source), "--url", url)
    assert code == 1
    assert out.startswith("created 0, failed 3 in ")
    assert f"task-scheduler: lines 1-3 not created: cannot connect to {url} (connection refused;" in err


@pytest.mark.parametrize(
    "args",
    [
        ["create", "--in", "1x", "--webhook", "http://example.com/"],
        ["create", "--in", "1h", "--at", in_hours(1), "--webhook", "http://example.com/"],
        ["create", "--at", "2030-01-01T00:00:00", "--webhook", "http://example.com/"],
        ["create", "--in", "1h"],
        ["create", "--in", "1h", "--webhook", "http://example.com/", "--header", "no colon"],
        ["create", "--in", "1h", "--webhook", "http://example.com/", "--max-lateness", "-1"],
        ["list", "--limit", "1001"],
        ["list", "--label", "novalue"],
        ["get", "0"],
        ["get", "1", "--url", "localhost:8080"],
        ["import"],
        ["bulk", "--status", "pending"],
        ["bulk", "--action", "delete", "--status", "pending"],
        ["bulk", "--action", "reschedule", "--offset", "soon"],
        ["bulk-status", "0"],
    ],
)
def test_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["timers", *args])
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("1h30m45s", (1, 30, 45)),
        ("90m", (0, 90, 0)),
        ("45s", (0, 0, 45)),
        ("5445", (0, 0, 5445)),
        ("2d3h", (51, 0, 0)),
        ("1h 5s", (1, 0, 5)),
    ],
)
def test_parse_duration(text: str, fields: tuple[int, int, int]) -> None:
    assert parse_duration(text) == dict(zip(("hours", "minutes", "seconds"), fields, strict=True))


POISON_LINES = [
    ('{"minutes": 5, "url": "http://example.com/", "body": {"x": NaN}}', "body: contains NaN or Infinity"),
    (
        '{"minutes": 5, "url": "http://example.com/", "labels": {"k": "\\ud800"}}',
        "labels: label k contains a lone",
    ),
    ('{"fire_at": "0001-01-01T00:00:00Z", "url": "http://example.com/"}', "fire_at: is before 1970"),
    ('{"minutes": 5, "url": "http://127..0.1/"}', "url: host '127..0.1' is not a canonical IPv4"),
]


async def test_import_refuses_a_poison_line_by_its_line_number(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, api: aiohttp.ClientSession
) -> None:
    """Issue 11: the import goes through the API, so the one definition of what may be stored applies;
    a poison line is a 422 naming its line (its batch is all or none), never a 500 or a stored row."""
    good = json.dumps({"minutes": 5, "url": "http://example.com/", "labels": {"run": "poison"}})
    for poison, reason in POISON_LINES:
        source = tmp_path / "poison.jsonl"
        source.write_text(f"{good}\n{poison}\n{good}\n")
        code, out, err = await run(capsys, "import", str(source))
        assert code == 1
        assert out.startswith("created 0, failed 3 in "), out
        assert f"lines 1-3 not created: 422 validation_error: line 2: {reason}" in err, err
    assert await count_timers(api, "run:poison") == 0


def _run_get(base_url: str, timer_id: int, *, on_terminal: bool) -> str:
    """`task-scheduler timers get` as a subprocess, its stdout a pseudo-terminal or a pipe."""
    command = [sys.executable, "-m", "task_scheduler", "timers", "get", str(timer_id)]
    env = {**os.environ, "TASK_SCHEDULER_URL": base_url}
    env.pop("TASK_SCHEDULER_API_KEY", None)
    if not on_terminal:
        piped = subprocess.run(command, capture_output=True, timeout=60, env=env, check=True)
        return piped.stdout.decode()
    leader, follower = pty.openpty()
    try:
        subprocess.run(command, stdout=follower, stderr=subprocess.PIPE, timeout=60, env=env, check=True)
    finally:
        os.close(follower)
    shown = b""
    try:
        while chunk := os.read(leader, 65536):
            shown += chunk
    except OSError:  # EIO: the terminal's other end is closed and everything was read
        pass
    finally:
        os.close(leader)
    return shown.decode()


async def test_the_services_text_shows_its_control_characters_escaped_on_a_terminal(
    service: ServiceProcess, api: aiohttp.ClientSession
) -> None:
    """A writer's label with escape sequences (clear the screen, set the window title), a carriage
    return and a right-to-left override: on the operator's terminal each shows as its escape and
    none acts; through a pipe the text is as stored."""
    hostile = "\x1b]0;owned\x07\x1b[2J\u202eevil\r"
    async with api.post(
        "/timer", json={"seconds": 3600, "url": "http://example.com/hook", "labels": {"note": hostile}}
    ) as response:
        assert response.status == 201, await response.text()
        timer_id = (await response.json())["timer_id"]
    on_terminal = await asyncio.to_thread(_run_get, service.base_url, timer_id, on_terminal=True)
    piped = await asyncio.to_thread(_run_get, service.base_url, timer_id, on_terminal=False)
    assert "note=\\u001b]0;owned\\u0007\\u001b[2J\\u202eevil\\u000d" in on_terminal, on_terminal
    assert "\x1b" not in on_terminal
    assert "\u202e" not in on_terminal
    assert f"note={hostile}" in piped
