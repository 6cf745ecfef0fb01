"""The dashboard in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium; no
browser download) against a real service process on 127.0.0.1.

Skipped, with the reason, only on a developer machine without Chromium; in CI (`CI` set) a
missing browser fails the run (`.ci/run` installs it)."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.acceptance

CHROMIUM = Path("/usr/bin/chromium")
ADMIN_KEY = "operator-chosen-admin-key-0123456789-abcdef"
URL = "http://example.com/hook"
WAIT_MS = 30_000  # how long an expectation may wait for the page (not a speed assertion)

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: .ci/run installs it (apt-get install chromium)", pytrace=False)
    pytest.skip(
        f"{CHROMIUM} is not installed (apt-get install chromium); CI runs these", allow_module_level=True
    )

from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect  # noqa: E402

expect.set_options(timeout=WAIT_MS)


@dataclass
class Dashboard:
    base_url: str
    api: httpx.AsyncClient
    browser: Browser
    problems: list[str] = field(default_factory=list)

    async def page(self) -> Page:
        """A fresh browser context (its own cookies) that records console errors and CSP reports."""
        context = await self.browser.new_context(base_url=self.base_url)
        page = await context.new_page()
        page.set_default_timeout(WAIT_MS)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.problems.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.problems.append(str(error)))
        page.on("dialog", lambda dialog: self.problems.append(f"dialog opened: {dialog.message}"))
        return page

    async def sign_in(self, page: Page, key: str) -> None:
        await page.goto("/ui")
        await expect(page).to_have_url(f"{self.base_url}/ui/login")
        await page.get_by_label("API key").fill(key)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Overview")).to_be_visible()

    async def timer(self, key: str = ADMIN_KEY, **fields: Any) -> int:
        response = await self.api.post(
            "/timer", json={"minutes": 30, "url": URL, **fields}, headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 201, response.text
        timer_id: int = response.json()["timer_id"]
        return timer_id

    async def key(self, tenant: str, role: str) -> str:
        response = await self.api.post(
            "/admin/keys",
            json={"tenant": tenant, "role": role},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert response.status_code == 201, response.text
        key: str = response.json()["api_key"]
        return key

    async def schedule(self, **fields: Any) -> int:
        body = {"cron": "0 9 * * 1-5", "timezone": "Europe/Berlin", "url": URL, **fields}
        response = await self.api.post(
            "/schedules", json=body, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert response.status_code == 201, response.text
        schedule_id: int = response.json()["schedule_id"]
        return schedule_id

    async def schedule_status(self, schedule_id: int) -> str:
        response = await self.api.get(
            f"/schedules/{schedule_id}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        status: str = response.json()["status"]
        return status

    async def status(self, timer_id: int) -> str:
        response = await self.api.get(f"/timer/{timer_id}", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        status: str = response.json()["status"]
        return status


@pytest.fixture
async def dashboard(spawn: Callable[..., ServiceProcess]) -> AsyncIterator[Dashboard]:
    proc = spawn(SCHEDULER_ADMIN_API_KEY=ADMIN_KEY, SCHEDULER_API_KEY_CACHE_SECONDS="0")
    await proc.wait_ready()
    async with (
        httpx.AsyncClient(base_url=proc.base_url) as api,
        async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield Dashboard(proc.base_url, api, browser)
        finally:
            await browser.close()


@asynccontextmanager
async def no_problems(dashboard: Dashboard) -> AsyncIterator[None]:
    yield
    assert dashboard.problems == [], "console errors or CSP violations"


async def test_sign_in_see_a_timer_cancel_it_and_sign_out(dashboard: Dashboard) -> None:
    timer_id = await dashboard.timer(labels={"team": "billing"})
    async with no_problems(dashboard):
        page = await dashboard.page()
        await dashboard.sign_in(page, ADMIN_KEY)
        response = await page.goto("/ui/timers")
        assert response is not None
        csp = await response.header_value("content-security-policy")
        assert csp is not None
        assert "script-src 'self'" in csp
        row = page.locator(f'tr[data-timer-id="{timer_id}"]')
        await expect(row).to_contain_text("team:billing")
        await row.get_by_role("link", name=str(timer_id)).click()
        await expect(page.get_by_role("heading", name=f"Timer {timer_id}")).to_be_visible()
        await expect(page.locator("#curl-text")).to_contain_text("curl -X POST")
        await page.get_by_role("button", name="Cancel timer").click()
        await expect(page.locator("#timer-status")).to_have_text("cancelled")
        for path in ("/ui", "/ui/destinations", "/ui/keys"):
            await page.goto(path)
        await page.get_by_role("button", name="Sign out").click()
        await expect(page).to_have_url(f"{dashboard.base_url}/ui/login")
        await page.goto("/ui/timers")
        await expect(page).to_have_url(f"{dashboard.base_url}/ui/login")
    assert await dashboard.status(timer_id) == "cancelled"


async def test_a_stored_payload_is_shown_as_text(dashboard: Dashboard) -> None:
    payload = '<script>window.pwned=1</script>"><img src=x onerror=window.pwned=2>'
    timer_id = await dashboard.timer(
        url='http://example.com/?q="><img/src=x/onerror=window.pwned=3>',
        labels={"note": payload},
        body={"html": payload},
    )
    async with no_problems(dashboard):
        page = await dashboard.page()
        await dashboard.sign_in(page, ADMIN_KEY)
        for path in ("/ui/timers", f"/ui/timers/{timer_id}"):
            await page.goto(path)
            await expect(
                page.get_by_text("note:<script>window.pwned=1</script>", exact=False).first
            ).to_be_visible()
            assert await page.evaluate("window.pwned") is None
            assert await page.locator("main img").count() == 0
        await expect(page.locator("#timer-url")).to_contain_text('"><img/src=x/onerror=window.pwned=3>')


async def test_a_reader_sees_no_actions_and_a_post_without_csrf_is_refused(dashboard: Dashboard) -> None:
    reader = await dashboard.key("default", "reader")
    timer_id = await dashboard.timer()
    page = await dashboard.page()
    await dashboard.sign_in(page, reader)
    await page.goto(f"/ui/timers/{timer_id}")
    await expect(page.get_by_role("heading", name=f"Timer {timer_id}")).to_be_visible()
    assert await page.get_by_role("button", name="Cancel timer").count() == 0
    assert await page.locator("#edit-form").count() == 0
    await page.goto("/ui/timers")
    assert await page.locator("input.row-select").count() == 0
    assert await page.get_by_role("link", name="API keys").count() == 0
    token = await page.locator('input[name="csrf"]').first.get_attribute("value")
    assert token
    # The page's own cookies, posted as a script on the page would (no CSRF token, then the role).
    without = await page.request.post(f"/ui/timers/{timer_id}/cancel", form={})
    with_token = await page.request.post(f"/ui/timers/{timer_id}/cancel", form={"csrf": token})
    assert without.status == 403
    assert with_token.status == 403
    assert await dashboard.status(timer_id) == "pending"


async def test_a_writer_cannot_reach_another_tenants_timer(dashboard: Dashboard) -> None:
    acme = await dashboard.key("acme", "writer")
    globex = await dashboard.key("globex", "writer")
    timer_id = await dashboard.timer(acme)
    page = await dashboard.page()
    await dashboard.sign_in(page, globex)
    await page.goto("/ui/timers")
    assert await page.locator(f'tr[data-timer-id="{timer_id}"]').count() == 0
    token = await page.locator('input[name="csrf"]').first.get_attribute("value")
    response = await page.goto(f"/ui/timers/{timer_id}")
    assert response is not None
    assert response.status == 404
    refused = await page.request.post(f"/ui/timers/{timer_id}/cancel", form={"csrf": token or ""})
    assert refused.status in (403, 404)
    assert await dashboard.status(timer_id) == "pending"


async def test_a_new_timer_appears_live_and_bulk_cancel_of_all_matching(dashboard: Dashboard) -> None:
    labelled = [await dashboard.timer(labels={"campaign": "spring"}) for _ in range(3)]
    async with no_problems(dashboard):
        page = await dashboard.page()
        await dashboard.sign_in(page, ADMIN_KEY)
        await page.goto("/ui/timers?label=campaign%3Aspring")
        await expect(page.locator("tr[data-timer-id]")).to_have_count(3)
        late = await dashboard.timer(labels={"campaign": "spring"})  # the poll reloads the list
        await expect(page.locator(f'tr[data-timer-id="{late}"]')).to_be_visible()
        await page.get_by_label("all matching these filters").check()
        await page.get_by_role("button", name="Cancel", exact=True).click()
        await expect(page.locator("#matching-count")).to_have_text("4")
        await page.get_by_role("button", name="Yes, cancel 4 timers").click()
        await expect(page.get_by_role("status")).to_contain_text("4 timers cancelled")
    assert [await dashboard.status(i) for i in [*labelled, late]] == ["cancelled"] * 4


async def test_pause_resume_and_run_now_from_a_schedule_page(dashboard: Dashboard) -> None:
    schedule_id = await dashboard.schedule(labels={"team": "billing"})
    async with no_problems(dashboard):
        page = await dashboard.page()
        await dashboard.sign_in(page, ADMIN_KEY)
        await page.get_by_role("link", name="Schedules").click()
        row = page.locator(f'tr[data-schedule-id="{schedule_id}"]')
        await expect(row).to_contain_text("at 09:00 on weekdays, Europe/Berlin")
        await row.get_by_role("link", name=str(schedule_id)).click()
        await expect(page.get_by_role("heading", name=f"Schedule {schedule_id}")).to_be_visible()
        await expect(page.locator("#next-runs-table tbody tr")).to_have_count(5)
        await page.locator("#pause").focus()  # by keyboard
        await page.keyboard.press("Enter")
        await expect(page.locator("#schedule-status")).to_have_text("paused")
        assert await dashboard.schedule_status(schedule_id) == "paused"
        await page.get_by_role("button", name="Resume").click()
        await expect(page.locator("#schedule-status")).to_have_text("active")
        assert await dashboard.schedule_status(schedule_id) == "active"
        await page.get_by_role("button", name="Run now").click()
        notice = page.get_by_role("status")
        await expect(notice).to_contain_text("created, due now")
        found = re.search(r"run (\d+) created", await notice.inner_text())
        assert found
        timer_id = found.group(1)
        run = page.locator(f'#runs-table tr[data-timer-id="{timer_id}"]')
        await expect(run).to_contain_text("run now")  # a triggered run has no occurrence
        await run.get_by_role("link", name=timer_id).click()
        await expect(page.get_by_role("heading", name=f"Timer {timer_id}")).to_be_visible()


async def test_schedule_pages_fit_a_narrow_screen_and_a_reader_has_no_buttons(dashboard: Dashboard) -> None:
    schedule_id = await dashboard.schedule(url="http://example.com/" + "long-path/" * 20)
    reader = await dashboard.key("default", "reader")
    async with no_problems(dashboard):
        page = await dashboard.page()
        await page.set_viewport_size({"width": 375, "height": 800})
        await dashboard.sign_in(page, reader)
        for path in ("/ui/schedules", f"/ui/schedules/{schedule_id}"):
            await page.goto(path)
            await expect(page.get_by_role("heading", level=1)).to_be_visible()
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, path
        assert await page.get_by_role("button", name="Pause").count() == 0
        assert await page.get_by_role("button", name="Run now").count() == 0
