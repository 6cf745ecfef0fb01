"""Screenshots of every dashboard page for the README (docs/screenshots/), in Debian's Chromium.

    python scripts/ui_screenshots.py http://127.0.0.1:8080 <admin API key>

Creates a few demo timers through the API on that service first (use a scratch database, and
start the service with SCHEDULER_WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8 so some can be delivered)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
from playwright.async_api import async_playwright

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


async def demo_timers(base_url: str, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers) as api:
        first = 0
        for i, (minutes, team) in enumerate(
            [(5, "billing"), (30, "billing"), (90, "growth"), (240, "ops")] * 3
        ):
            response = await api.post(
                "/timer",
                json={
                    "minutes": minutes + i,
                    "url": f"https://hooks.{team}.example.com/reminder",
                    "labels": {"team": team, "customer": str(1000 + i)},
                    "headers": {"Authorization": "Bearer not-shown"},
                    "body": {"reminder": i},
                },
            )
            response.raise_for_status()
            first = first or response.json()["timer_id"]
        # Some that fire now: to the service's own /healthz (delivered) and to hosts that do not
        # resolve (failed), so the charts and destinations have something to show.
        for i in range(24):
            url = f"{base_url}/healthz" if i % 3 else f"https://unreachable-{i % 2}.invalid/hook"
            response = await api.post(
                "/timer",
                json={"seconds": 1 + i % 4, "url": url, "method": "GET", "retry": {"max_attempts": 1}},
            )
            response.raise_for_status()
        await asyncio.sleep(8)
        return int(first)


async def demo_schedules(base_url: str, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers) as api:
        made = []
        # The first calls the service's own /healthz: its runs now have outcomes to show.
        for cron, zone, team, url in [
            ("0 9 * * 1-5", "Europe/Berlin", "billing", f"{base_url}/healthz"),
            ("*/15 * * * *", "UTC", "ops", "https://hooks.ops.example.com/report"),
            ("@every 6h", "UTC", "growth", "https://hooks.growth.example.com/report"),
            ("30 7 1 * *", "America/New_York", "billing", "https://hooks.billing.example.com/monthly"),
        ]:
            response = await api.post(
                "/schedules",
                json={"cron": cron, "timezone": zone, "url": url, "method": "GET", "labels": {"team": team}},
            )
            response.raise_for_status()
            made.append(response.json()["schedule_id"])
        for _ in range(3):
            (await api.post(f"/schedules/{made[0]}/trigger")).raise_for_status()
        (await api.post(f"/schedules/{made[2]}/pause")).raise_for_status()
        await asyncio.sleep(3)
        return int(made[0])


async def main(base_url: str, key: str) -> None:
    timer_id = await demo_timers(base_url, key)
    schedule_id = await demo_schedules(base_url, key)
    OUT.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        for scheme in ("light", "dark"):
            context = await browser.new_context(
                base_url=base_url, viewport={"width": 1280, "height": 900}, color_scheme=scheme
            )
            page = await context.new_page()
            await page.goto("/ui/login")
            if scheme == "light":
                await page.screenshot(path=OUT / "login.png")
            await page.get_by_label("API key").fill(key)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"{base_url}/ui")
            pages = {
                "overview": "/ui",
                "timers": "/ui/timers",
                "timer": f"/ui/timers/{timer_id}",
                "destinations": "/ui/destinations",
                "keys": "/ui/keys",
                "schedules": "/ui/schedules",
                "schedule": f"/ui/schedules/{schedule_id}",
            }
            for name, path in pages.items():
                if scheme == "dark" and name not in ("overview", "timers"):
                    continue
                await page.goto(path)
                suffix = "" if scheme == "light" else "-dark"
                await page.screenshot(path=OUT / f"{name}{suffix}.png", full_page=True)
            await context.close()
        for scheme, path, name in [
            ("light", "/ui/timers", "timers-375px"),
            ("dark", f"/ui/schedules/{schedule_id}", "schedule-375px-dark"),
        ]:
            phone = await browser.new_context(
                base_url=base_url, viewport={"width": 375, "height": 800}, color_scheme=scheme
            )
            page = await phone.new_page()
            await page.goto("/ui/login")
            await page.get_by_label("API key").fill(key)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"{base_url}/ui")
            await page.goto(path)
            await page.screenshot(path=OUT / f"{name}.png", full_page=True)
            await phone.close()
        await browser.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
