"""`task-scheduler destinations ...` against the real app served on 127.0.0.1 (the command's main()
in a thread, as an operator runs it); what the commands did is read back through the API."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote

import httpx
import pytest

from task_scheduler.app import create_app
from task_scheduler.cli import main
from task_scheduler.config import Settings
from tests.support.app import served

KEY = "https://example.com:443"


@pytest.fixture
async def api(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    async with served(create_app(make_settings(), run_dispatcher=False)) as url:
        monkeypatch.setenv("TASK_SCHEDULER_URL", url)
        monkeypatch.delenv("TASK_SCHEDULER_API_KEY", raising=False)
        async with httpx.AsyncClient(base_url=url) as client:
            yield client


async def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["destinations", *args])
    out, err = capsys.readouterr()
    return code, out, err


def pairs(out: str) -> dict[str, str]:
    return dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in out.splitlines() if line.strip())


async def test_pause_list_get_and_resume(capsys: pytest.CaptureFixture[str], api: httpx.AsyncClient) -> None:
    await api.post("/timer", json={"seconds": 0, "url": "https://example.com/x"})
    code, out, err = await run(capsys, "pause", KEY)
    assert (code, err) == (0, "")
    assert pairs(out)["paused"] == "yes"
    assert (await api.get(f"/destinations/{quote(KEY, safe='')}")).json()["paused"] is True

    code, out, _ = await run(capsys, "list")
    lines = [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()]
    assert lines == [
        ["STATE", "PAUSED", "FAILURES", "OPENED_AT", "RATE", "PARALLELISM", "KEY"],
        ["closed", "yes", "0", "-", "unlimited", "-", KEY],
    ]

    code, out, _ = await run(capsys, "get", KEY)
    assert (pairs(out)["breaker_state"], pairs(out)["waiting"]) == ("closed", "1 timers due now")
    assert (pairs(out)["in_flight"], pairs(out)["health"]) == (
        "0 timers being fired",
        "no attempts in the last 15 min",
    )

    code, out, _ = await run(capsys, "resume", KEY, "--json")
    assert code == 0
    assert json.loads(out)["paused"] is False

    code, out, _ = await run(capsys, "unpause", "other")
    assert (code, pairs(out)["paused"]) == (0, "no")


async def test_set_limits_keeps_what_is_left_out_and_unlimited_lifts_them(
    capsys: pytest.CaptureFixture[str], api: httpx.AsyncClient
) -> None:
    code, out, err = await run(capsys, "set", KEY, "--rate", "0.5", "--parallelism", "3")
    assert (code, err) == (0, "")
    assert (pairs(out)["rate"], pairs(out)["parallelism"]) == ("0.5/s burst 1", "3")
    code, out, _ = await run(capsys, "set", KEY, "--burst", "4")
    assert (pairs(out)["rate"], pairs(out)["parallelism"]) == ("0.5/s burst 4", "3")
    code, out, _ = await run(capsys, "list")
    lines = [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()]
    assert lines[1][-3:] == ["0.5/s burst 4", "3", KEY]
    code, out, _ = await run(capsys, "set", KEY, "--unlimited", "--json")
    assert code == 0
    shown = json.loads(out)
    assert (shown["rate_per_second"], shown["burst"], shown["parallelism"]) == (None, None, None)
    code, out, err = await run(capsys, "set", KEY)
    assert (code, out) == (2, "")
    assert "--rate" in err
    with pytest.raises(SystemExit):
        await run(capsys, "set", KEY, "--rate", "0")
    assert "a number above 0" in capsys.readouterr().err


async def test_a_bad_key_is_refused_naming_it(
    capsys: pytest.CaptureFixture[str], api: httpx.AsyncClient
) -> None:
    code, out, err = await run(capsys, "get", " padded")
    assert code == 1
    assert "key" in err
    assert out == ""
