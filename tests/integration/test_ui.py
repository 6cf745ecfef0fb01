"""The dashboard over HTTP (httpx against the ASGI app, real PostgreSQL): every route, every
refusal, the session cookie, CSRF, roles, tenants and the Content-Security-Policy."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest

from task_scheduler.app import create_app
from task_scheduler.config import Settings
from task_scheduler.db import create_engine
from task_scheduler.ui import session
from tests.support.keys import ADMIN_KEY, bearer, make_key
from tests.support.rollups import fold_now

URL = "http://example.com/hook"
XSS_LABEL = "<script>alert(1)</script>"
XSS_URL = 'http://example.com/?q="><img/src=x/onerror=alert(1)>'


@asynccontextmanager
async def serving(
    settings: Settings, *, client_host: str = "127.0.0.1", base_url: str = "http://testserver"
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, run_dispatcher=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(client_host, 40000), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


@pytest.fixture
def secured(make_settings: Callable[..., Settings]) -> Callable[..., Any]:
    """The API with a bootstrap admin key and no key caching (revocations act at once)."""

    def start(**overrides: Any) -> Any:
        values = {"admin_api_key": ADMIN_KEY, "api_key_cache_seconds": 0, **overrides}
        return serving(make_settings(**values))

    return start


async def make_timer(client: httpx.AsyncClient, key: str | None = ADMIN_KEY, **fields: Any) -> int:
    headers = bearer(key) if key else {}
    response = await client.post("/timer", json={"minutes": 30, "url": URL, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    timer_id: int = response.json()["timer_id"]
    return timer_id


async def sign_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    response = await client.post("/ui/login", data={"api_key": key})
    assert response.status_code == 303, response.text
    return response


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


async def csrf(client: httpx.AsyncClient, path: str = "/ui/timers") -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


async def status_of(db: asyncpg.Connection, timer_id: int) -> str:
    status: str = await db.fetchval("SELECT status FROM timers WHERE id = $1", timer_id)
    return status


# -- sign-in, the cookie, sign-out ----------------------------------------------------------


async def test_sign_in_sets_a_strict_http_only_expiring_cookie(secured: Callable[..., Any]) -> None:
    async with secured() as client:
        assert (await client.get("/ui")).headers["location"] == "/ui/login"
        login = await client.get("/ui/login")
        assert login.status_code == 200
        assert 'name="api_key"' in login.text
        response = await sign_in(client, ADMIN_KEY)
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert "path=/ui" in cookie
        assert "max-age=28800" in cookie
        assert "secure" not in cookie  # plain http: a Secure cookie would never come back
        assert ADMIN_KEY.lower() not in cookie
        overview = await client.get("/ui")
    assert overview.status_code == 200
    assert "Timers by status" in overview.text


async def test_the_cookie_is_secure_over_https(make_settings: Callable[..., Settings]) -> None:
    async with serving(make_settings(admin_api_key=ADMIN_KEY), base_url="https://testserver") as client:
        response = await sign_in(client, ADMIN_KEY)
    assert "secure" in response.headers["set-cookie"].lower()


@pytest.mark.parametrize("key", ["", "   ", "tsk_000000000000_nope", "not-a-key"])
async def test_sign_in_refuses_a_bad_key(secured: Callable[..., Any], key: str) -> None:
    async with secured() as client:
        response = await client.post("/ui/login", data={"api_key": key})
    assert response.status_code == 401
    assert 'role="alert"' in response.text
    assert "set-cookie" not in response.headers


async def test_sign_out_ends_the_session(secured: Callable[..., Any]) -> None:
    async with secured() as client:
        await sign_in(client, ADMIN_KEY)
        token = await csrf(client)
        assert (await client.post("/ui/logout", data={})).status_code == 403
        response = await client.post("/ui/logout", data={"csrf": token})
        assert response.status_code == 303
        assert response.headers["location"] == "/ui/login"
        assert (await client.get("/ui")).status_code == 303


async def test_a_revoked_key_ends_its_session_on_the_next_request(secured: Callable[..., Any]) -> None:
    async with secured() as client:
        key = await make_key(client, "acme", "writer")
        await sign_in(client, key)
        assert (await client.get("/ui/timers")).status_code == 200
        key_id = key.split("_")[1]
        assert (await client.delete(f"/admin/keys/{key_id}", headers=bearer(ADMIN_KEY))).status_code == 200
        response = await client.get("/ui/timers")
        assert response.status_code == 303
        assert response.headers["location"] == "/ui/login"
        assert (await client.get("/ui/live.json")).status_code == 401


async def test_a_tampered_or_expired_cookie_is_refused(secured: Callable[..., Any]) -> None:
    async with secured() as client:
        await sign_in(client, ADMIN_KEY)
        value = client.cookies[session.COOKIE_NAME]
        payload, _, mac = value.partition(".")
        forged = session.encode(session.SessionCookie(key_id="x", nonce="n", expires_at=2**40), b"k")
        for bad in (f"{payload}.{mac[:-2]}AA", forged, "garbage", f"{payload}."):
            client.cookies.set(session.COOKIE_NAME, bad, path="/ui")
            assert (await client.get("/ui")).status_code == 303, bad
        expired = session.SessionCookie(key_id=None, nonce="n", expires_at=1)
        assert session.decode_unverified(session.encode(expired, b"k")) is None


async def test_the_session_secret_setting_is_part_of_the_signature(
    make_settings: Callable[..., Settings],
) -> None:
    async with serving(make_settings(admin_api_key=ADMIN_KEY, ui_session_secret="one")) as client:
        await sign_in(client, ADMIN_KEY)
        cookie = client.cookies[session.COOKIE_NAME]
    async with serving(make_settings(admin_api_key=ADMIN_KEY, ui_session_secret="two")) as client:
        client.cookies.set(session.COOKIE_NAME, cookie, path="/ui")
        assert (await client.get("/ui")).status_code == 303
    async with serving(make_settings(admin_api_key=ADMIN_KEY, ui_session_secret="one")) as client:
        client.cookies.set(session.COOKIE_NAME, cookie, path="/ui")
        assert (await client.get("/ui")).status_code == 200  # another instance, the same secret


# -- protected mode -------------------------------------------------------------------------


async def test_protected_mode_lets_a_loopback_browser_in_as_the_local_admin(
    make_settings: Callable[..., Settings], db: asyncpg.Connection
) -> None:
    async with serving(make_settings()) as client:
        timer_id = await make_timer(client, None)
        page = await client.get("/ui/timers")
        assert page.status_code == 200
        assert "local admin" in page.text
        assert session.COOKIE_NAME in client.cookies
        assert (await client.post(f"/ui/timers/{timer_id}/cancel", data={})).status_code == 403
        response = await client.post(f"/ui/timers/{timer_id}/cancel", data={"csrf": csrf_of(page.text)})
        assert response.status_code == 303
    assert await status_of(db, timer_id) == "cancelled"


async def test_protected_mode_sends_other_browsers_to_sign_in(make_settings: Callable[..., Settings]) -> None:
    async with serving(make_settings(), client_host="203.0.113.5") as client:
        response = await client.get("/ui")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login"


# -- headers and the OpenAPI document -------------------------------------------------------


async def test_ui_pages_carry_a_strict_csp_and_the_api_keeps_its_own(secured: Callable[..., Any]) -> None:
    async with secured() as client:
        await sign_in(client, ADMIN_KEY)
        page = await client.get("/ui")
        css = await client.get("/ui/static/ui.css")
        js = await client.get("/ui/static/ui.js")
        api = await client.get("/timers", headers=bearer(ADMIN_KEY))
        docs = await client.get("/docs")
        schema = (await client.get("/openapi.json")).json()
    csp = page.headers["content-security-policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "same-origin"
    assert page.headers["x-frame-options"] == "DENY"
    assert css.status_code == js.status_code == 200
    assert len(js.content) <= 100 * 1024
    assert api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert "content-security-policy" not in docs.headers
    assert not [path for path in schema["paths"] if path.startswith("/ui")]


async def test_no_inline_script_or_style_in_any_template() -> None:
    from task_scheduler.ui.router import HERE

    for template in (HERE / "templates").glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert "<style" not in text, template.name
        assert not re.search(r"\sstyle=", text), template.name
        assert not re.search(r"\son[a-z]+=", text), template.name


async def test_cross_origin_posts_are_refused(secured: Callable[..., Any]) -> None:
    async with secured() as client:
        response = await client.post(
            "/ui/login", data={"api_key": ADMIN_KEY}, headers={"Origin": "http://evil.test"}
        )
        assert response.status_code == 403
        same = await client.post(
            "/ui/login", data={"api_key": ADMIN_KEY}, headers={"Origin": "http://testserver"}
        )
        assert same.status_code == 303


# -- pages ----------------------------------------------------------------------------------


async def test_every_page_renders_for_an_admin(
    secured: Callable[..., Any], db: asyncpg.Connection, database_url: str
) -> None:
    async with secured() as client:
        timer_id = await make_timer(
            client, labels={"team": "billing"}, headers={"Authorization": "Bearer s3cret"}
        )
        done_id = await make_timer(client)
        await db.execute(
            "INSERT INTO timer_attempts VALUES ($1, 1, now(), 12.5, 503, 'http_status', 'HTTP 503', 'down'),"
            " ($2, 1, now(), 20, 200, NULL, NULL, NULL)",
            timer_id,
            done_id,
        )
        engine = create_engine(database_url, pool_size=1)
        try:
            await fold_now(engine)
        finally:
            await engine.dispose()
        await sign_in(client, ADMIN_KEY)
        pages = {
            path: await client.get(path)
            for path in ("/ui", "/ui/timers", f"/ui/timers/{timer_id}", "/ui/destinations", "/ui/keys")
        }
        live = await client.get("/ui/live.json")
    for path, page in pages.items():
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html"), path
    assert "<svg" in pages["/ui"].text
    assert "example.com" in pages["/ui/destinations"].text
    detail = pages[f"/ui/timers/{timer_id}"].text
    assert "s3cret" not in detail
    assert "[redacted]" in detail
    assert "HTTP 503" in detail
    assert "down" in detail
    assert "curl -X POST" in detail
    assert live.json()["counts"]["pending"] == 2


async def test_the_live_answer_is_shared_for_a_few_seconds(secured: Callable[..., Any]) -> None:
    async with secured() as client:
        await sign_in(client, ADMIN_KEY)
        first = (await client.get("/ui/live.json")).json()
        await make_timer(client)
        second = (await client.get("/ui/live.json")).json()
    assert first == second  # cached: one query per instance per interval, whatever the tabs


async def test_filters_id_lookup_and_pagination(secured: Callable[..., Any]) -> None:
    async with secured() as client:
        ids = [await make_timer(client, labels={"batch": "b"}) for _ in range(3)]
        other = await make_timer(client, labels={"batch": "c"})
        await sign_in(client, ADMIN_KEY)
        by_label = (await client.get("/ui/timers", params={"label": "batch:b", "status": "pending"})).text
        assert all(f"/ui/timers/{i}" in by_label for i in ids)
        assert f'/ui/timers/{other}"' not in by_label
        lookup = await client.get("/ui/timers", params={"id": str(ids[0])})
        assert lookup.headers["location"] == f"/ui/timers/{ids[0]}"
        window = await client.get(
            "/ui/timers", params={"due_after": "2000-01-01T00:00", "due_before": "2001-01-01T00:00"}
        )
        assert "No timers match" in window.text
        for params in (
            {"status": "nope"},
            {"label": "nocolon"},
            {"due_after": "yesterday"},
            {"id": "x1"},
            {"id": "²"},
            {"id": str(2**63)},
        ):
            assert (await client.get("/ui/timers", params=params)).status_code == 422, params
        assert (await client.get("/ui/timers/0")).status_code == 404
        assert (await client.get("/ui/timers/abc")).status_code == 404
        assert (await client.get("/ui/timers/²")).status_code == 404
        token = await csrf(client)
        bulk = await client.post(
            "/ui/timers/bulk", data={"csrf": token, "action": "cancel", "timer_id": ["²", "0"]}
        )
        assert bulk.status_code == 422


async def test_pagination_follows_the_service_cursor(secured: Callable[..., Any]) -> None:
    from task_scheduler.ui import router

    async with secured() as client:
        ids = [await make_timer(client, minutes=10 + i) for i in range(router.PAGE_SIZE + 2)]
        await sign_in(client, ADMIN_KEY)
        first = (await client.get("/ui/timers")).text
        link = re.search(r'href="(/ui/timers\?[^"]+)" id="next-page"', first)
        assert link
        second = (await client.get(link.group(1).replace("&amp;", "&"))).text
    assert f'/ui/timers/{ids[-1]}"' in second
    assert f'/ui/timers/{ids[-1]}"' not in first


# -- stored text is shown as text -----------------------------------------------------------


async def test_a_stored_payload_is_rendered_inert(secured: Callable[..., Any]) -> None:
    async with secured() as client:
        timer_id = await make_timer(client, url=XSS_URL, labels={"x": XSS_LABEL}, body={"html": XSS_LABEL})
        await sign_in(client, ADMIN_KEY)
        pages = [
            await client.get("/ui/timers"),
            await client.get(f"/ui/timers/{timer_id}"),
            await client.get("/ui"),
        ]
    for page in pages:
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert "<img/src=x" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0].text


# -- acting ---------------------------------------------------------------------------------


async def test_cancel_retry_and_their_refusals(secured: Callable[..., Any], db: asyncpg.Connection) -> None:
    async with secured() as client:
        timer_id = await make_timer(client)
        failed_id = await make_timer(client)
        await db.execute("UPDATE timers SET status = 'failed' WHERE id = $1", failed_id)
        await sign_in(client, ADMIN_KEY)
        token = await csrf(client)
        assert (await client.post(f"/ui/timers/{timer_id}/cancel", data={})).status_code == 403
        assert (
            await client.post(f"/ui/timers/{timer_id}/cancel", data={"csrf": token + "x"})
        ).status_code == 403
        assert await status_of(db, timer_id) == "pending"
        response = await client.post(f"/ui/timers/{timer_id}/cancel", data={"csrf": token})
        assert response.status_code == 303
        assert await status_of(db, timer_id) == "cancelled"
        again = await client.post(f"/ui/timers/{timer_id}/cancel", data={"csrf": token})
        assert again.status_code == 409
        assert "cancelled" in again.text
        assert (await client.post(f"/ui/timers/{failed_id}/retry", data={"csrf": token})).status_code == 303
        assert await status_of(db, failed_id) == "pending"
        assert (await client.post("/ui/timers/999999/cancel", data={"csrf": token})).status_code == 404


async def test_a_csrf_token_belongs_to_its_session(
    secured: Callable[..., Any], db: asyncpg.Connection
) -> None:
    async with secured() as client:
        timer_id = await make_timer(client)
        await sign_in(client, ADMIN_KEY)
        first = await csrf(client)
        await sign_in(client, ADMIN_KEY)  # a new session: a new nonce
        assert (await client.post(f"/ui/timers/{timer_id}/cancel", data={"csrf": first})).status_code == 403
        assert (await client.post("/ui/timers/bulk", data={"action": "cancel"})).status_code == 403
    assert await status_of(db, timer_id) == "pending"


async def test_posting_without_a_session_is_refused(secured: Callable[..., Any]) -> None:
    async with secured() as client:
        timer_id = await make_timer(client)
        response = await client.post(f"/ui/timers/{timer_id}/cancel", data={"csrf": "x"})
    assert response.status_code == 401


async def test_a_reader_sees_no_actions_and_is_refused(
    secured: Callable[..., Any], db: asyncpg.Connection
) -> None:
    async with secured() as client:
        reader = await make_key(client, "default", "reader")
        timer_id = await make_timer(client)
        await sign_in(client, reader)
        listing = await client.get("/ui/timers")
        detail = await client.get(f"/ui/timers/{timer_id}")
        token = csrf_of(listing.text)
        for path, data in (
            (f"/ui/timers/{timer_id}/cancel", {}),
            (f"/ui/timers/{timer_id}/retry", {}),
            (f"/ui/timers/{timer_id}/edit", {"url": "http://example.com/other"}),
            ("/ui/timers/bulk", {"action": "cancel", "timer_id": str(timer_id)}),
            ("/ui/keys", {"tenant": "x", "role": "admin"}),
        ):
            assert (await client.post(path, data={"csrf": token, **data})).status_code == 403, path
        keys = await client.get("/ui/keys")
    assert 'class="row-select"' not in listing.text
    assert 'id="bulk-cancel"' not in listing.text
    assert 'id="cancel"' not in detail.text
    assert 'id="edit-form"' not in detail.text
    assert 'href="/ui/keys"' not in listing.text
    assert keys.status_code == 403
    assert await status_of(db, timer_id) == "pending"


async def test_another_tenants_timer_is_not_found(
    secured: Callable[..., Any], db: asyncpg.Connection
) -> None:
    async with secured() as client:
        acme = await make_key(client, "acme", "writer")
        other = await make_key(client, "globex", "writer")
        timer_id = await make_timer(client, acme)
        await sign_in(client, other)
        assert (await client.get(f"/ui/timers/{timer_id}")).status_code == 404
        assert f'/ui/timers/{timer_id}"' not in (await client.get("/ui/timers")).text
        token = await csrf(client)
        assert (await client.post(f"/ui/timers/{timer_id}/cancel", data={"csrf": token})).status_code == 404
        bulk = await client.post(
            "/ui/timers/bulk", data={"csrf": token, "action": "cancel", "timer_id": str(timer_id)}
        )
        assert bulk.status_code == 303
        assert "1 skipped" in bulk.headers["location"].replace("+", " ")
    assert await status_of(db, timer_id) == "pending"


async def test_bulk_cancel_of_selected_rows_and_of_all_matching(
    secured: Callable[..., Any], db: asyncpg.Connection
) -> None:
    async with secured() as client:
        chosen = [await make_timer(client) for _ in range(2)]
        labelled = [await make_timer(client, labels={"campaign": "spring"}) for _ in range(5)]
        keep = await make_timer(client, labels={"campaign": "autumn"})
        await sign_in(client, ADMIN_KEY)
        token = await csrf(client)
        selected = await client.post(
            "/ui/timers/bulk",
            data={"csrf": token, "action": "cancel", "scope": "selected", "timer_id": chosen},
        )
        assert selected.status_code == 303
        assert (
            await client.post("/ui/timers/bulk", data={"csrf": token, "action": "cancel"})
        ).status_code == 422
        assert (
            await client.post("/ui/timers/bulk", data={"csrf": token, "action": "drop"})
        ).status_code == 422
        form = {"csrf": token, "action": "cancel", "scope": "all", "label": "campaign:spring"}
        confirm = await client.post("/ui/timers/bulk", data=form)
        assert confirm.status_code == 200
        assert re.search(r'id="matching-count">5<', confirm.text)
        assert [await status_of(db, i) for i in labelled] == ["pending"] * 5  # nothing before confirming
        done = await client.post("/ui/timers/bulk", data={**form, "confirmed": "yes"})
        assert done.status_code == 303
        notice = (await client.get(done.headers["location"])).text
    assert "5 timers cancelled" in notice
    assert [await status_of(db, i) for i in chosen + labelled] == ["cancelled"] * 7
    assert await status_of(db, keep) == "pending"


async def test_bulk_retry_of_all_failed(secured: Callable[..., Any], db: asyncpg.Connection) -> None:
    async with secured() as client:
        ids = [await make_timer(client) for _ in range(3)]
        await db.execute("UPDATE timers SET status = 'failed' WHERE id = ANY($1)", ids[:2])
        await sign_in(client, ADMIN_KEY)
        token = await csrf(client)
        form = {"csrf": token, "action": "retry", "scope": "all", "status": "failed", "confirmed": "yes"}
        assert (await client.post("/ui/timers/bulk", data=form)).status_code == 303
    assert [await status_of(db, i) for i in ids] == ["pending"] * 3


async def test_edit_uses_the_etag_and_shows_a_conflict(
    secured: Callable[..., Any], db: asyncpg.Connection
) -> None:
    async with secured() as client:
        timer_id = await make_timer(client, labels={"a": "1"})
        await sign_in(client, ADMIN_KEY)
        page = (await client.get(f"/ui/timers/{timer_id}")).text
        hidden = re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page)
        form = {name: html.unescape(value) for name, value in hidden}
        form.update(url="http://example.com/moved", fire_at=form["fire_at_was"], labels="a=1\nb=2")
        saved = await client.post(f"/ui/timers/{timer_id}/edit", data=form)
        assert saved.status_code == 303
        row = await db.fetchrow("SELECT url, labels FROM timers WHERE id = $1", timer_id)
        assert row["url"] == "http://example.com/moved"
        assert row["labels"] == '{"a": "1", "b": "2"}'
        stale = await client.post(
            f"/ui/timers/{timer_id}/edit", data={**form, "url": "http://example.com/third"}
        )
        assert stale.status_code == 412
        assert "Conflict" in stale.text
        bad = await client.post(f"/ui/timers/{timer_id}/edit", data={**form, "etag": "", "labels": "nokey"})
        assert bad.status_code == 422
        bad_url = await client.post(
            f"/ui/timers/{timer_id}/edit", data={**form, "etag": "", "url": "ftp://x"}
        )
        assert bad_url.status_code == 422
        assert (await client.post("/ui/timers/999999/edit", data={**form, "etag": ""})).status_code == 404
    assert await db.fetchval("SELECT url FROM timers WHERE id = $1", timer_id) == "http://example.com/moved"


async def test_admin_creates_lists_and_revokes_keys(secured: Callable[..., Any]) -> None:
    async with secured() as client:
        await sign_in(client, ADMIN_KEY)
        token = await csrf(client, "/ui/keys")
        created = await client.post(
            "/ui/keys", data={"csrf": token, "name": "ops", "tenant": "acme", "role": "reader"}
        )
        assert created.status_code == 201
        raw = re.search(r'<pre id="new-key">([^<]+)</pre>', created.text)
        assert raw
        assert raw.group(1).startswith("tsk_")
        key_id = raw.group(1).split("_")[1]
        assert (await client.get("/timers", headers=bearer(raw.group(1)))).status_code == 200
        listing = (await client.get("/ui/keys")).text
        assert key_id in listing
        assert raw.group(1) not in listing  # shown once
        bad = await client.post("/ui/keys", data={"csrf": token, "tenant": "bad tenant!", "role": "reader"})
        assert bad.status_code == 422
        revoked = await client.post(f"/ui/keys/{key_id}/revoke", data={"csrf": token})
        assert revoked.status_code == 303
        assert (await client.get("/timers", headers=bearer(raw.group(1)))).status_code == 401
        assert (await client.post("/ui/keys/ffffffffffff/revoke", data={"csrf": token})).status_code == 404
        assert (await client.post("/ui/keys/no-such!/revoke", data={"csrf": token})).status_code == 404


async def test_a_writer_may_not_manage_keys(secured: Callable[..., Any]) -> None:
    async with secured() as client:
        writer = await make_key(client, "acme", "writer")
        await sign_in(client, writer)
        token = await csrf(client)
        assert (await client.get("/ui/keys")).status_code == 403
        assert (
            await client.post("/ui/keys", data={"csrf": token, "tenant": "x", "role": "admin"})
        ).status_code == 403


async def test_counts_for_a_small_table_a_big_one_and_a_tenant(
    secured: Callable[..., Any], db: asyncpg.Connection
) -> None:
    async with secured() as client:
        writer = await make_key(client, "acme", "writer")
        mine = [await make_timer(client, writer) for _ in range(3)]
        for _ in range(4):
            await make_timer(client)
        await db.execute("UPDATE timers SET status = 'delivered' WHERE id = $1", mine[0])
        await db.execute("ANALYZE timers")
        await sign_in(client, ADMIN_KEY)
        small = (await client.get("/ui/live.json")).json()
        every_tenant_default = (await client.get("/ui/timers")).text
        every_tenant_any = (await client.get("/ui/timers", params={"status": ""})).text
        await sign_in(client, writer)
        overview = await client.get("/ui")
        tenant = (await client.get("/ui/live.json")).json()
        await db.execute(
            "INSERT INTO timers (url, due_at, status) SELECT 'http://example.com/', now(),"
            " CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'delivered' END FROM generate_series(1, 12000) AS i"
        )
        await db.execute(
            "INSERT INTO timers (url, due_at, status) VALUES ('http://example.com/', now(), 'expired')"
        )
        await db.execute("ANALYZE timers")
        await sign_in(client, ADMIN_KEY)
        big_page = (await client.get("/ui")).text  # (live.json still has the small table's, cached)
    big = {status: shown.strip() for status, shown in re.findall(r'data-count="(\w+)">([^<]+)<', big_page)}
    assert small["estimated"] is False
    assert small["counts"] == {
        "pending": 6,
        "firing": 0,
        "delivered": 1,
        "failed": 0,
        "expired": 0,
        "cancelled": 0,
    }
    assert tenant["estimated"] is False
    assert tenant["counts"] == {
        "pending": 2,
        "firing": 0,
        "delivered": 1,
        "failed": 0,
        "expired": 0,
        "cancelled": 0,
    }
    assert "Counted over your newest" in overview.text
    assert f'/ui/timers/{mine[1]}"' in overview.text  # next due, the tenant's
    assert f'/ui/timers/{mine[0]}"' not in every_tenant_default  # every tenant's: pending first
    assert f'/ui/timers/{mine[0]}"' in every_tenant_any
    assert "Estimated from the planner's statistics" in big_page
    assert big["pending"] == "6"  # counted from the partial index, below the cap
    assert 10_000 <= int(big["delivered"].replace(",", "")) <= 12_000  # reltuples x frequency
    assert 1_000 <= int(big["failed"].replace(",", "")) <= 1_400
    assert big["expired"].startswith("≤ ")  # too rare for the statistics: an upper bound


async def test_the_charts_and_destinations_read_the_rollups(
    database_url: str, db: asyncpg.Connection, secured: Callable[..., Any]
) -> None:
    from task_scheduler.ui.repository import attempt_rollup

    await db.execute(
        "INSERT INTO timers (id, url, due_at, status, attempts, tenant) OVERRIDING SYSTEM VALUE VALUES"
        " (1, 'http://user:secret@Example.COM:8080/x?y', now() - interval '1 second', 'delivered', 1, 'acme'),"
        " (2, 'https://other.example/hook', now(), 'failed', 2, 'globex')"
    )
    await db.execute(
        "INSERT INTO timer_attempts (timer_id, attempt, started_at, duration_ms, status_code, error_class,"
        " recorded_at) VALUES (1, 1, now(), 30, 200, NULL, now()),"
        " (2, 1, now(), 5, 503, 'http_status', now() - interval '2 minutes'),"
        " (2, 2, now(), 5, 503, 'http_status', now() - interval '2 hours')"
    )
    await db.execute("UPDATE rollup_watermarks SET folded_before = now() - interval '3 hours'")
    engine = create_engine(database_url, pool_size=1)
    try:
        await fold_now(engine)
        async with engine.connect() as conn:
            everyone = await attempt_rollup(conn, tenant=None)
            acme = await attempt_rollup(conn, tenant="acme")
    finally:
        await engine.dispose()
    hosts = {h.authority: h for h in everyone.hosts}
    assert set(hosts) == {"example.com:8080", "other.example"}  # no user:password, lower case
    assert (hosts["example.com:8080"].succeeded, hosts["example.com:8080"].last_ok) == (1, True)
    assert (hosts["other.example"].attempts, hosts["other.example"].last_error) == (1, "http_status")
    assert hosts["example.com:8080"].p50_ms == pytest.approx(30.0)  # 10-50 ms bucket, halfway
    assert sorted(everyone.per_minute.values()) in ([(0, 1), (1, 0)], [(1, 1)])
    assert sum(ok + failed for ok, failed in everyone.per_hour.values()) == 3  # the last day's
    assert everyone.durations == {0: (0, 1), 1: (1, 0)}  # 5 ms below 10; 30 ms in 10-50
    assert sum(ok + failed for ok, failed in everyone.lateness.values()) == 1  # first attempts only
    assert [h.authority for h in acme.hosts] == ["example.com:8080"]
    per_minute = {
        r["minute"]: int(r["n"])
        for r in await db.fetch(
            "SELECT minute, sum(deliveries) AS n FROM delivery_rollups"
            " WHERE minute >= date_trunc('minute', now()) - interval '59 minutes' GROUP BY minute"
        )
    }
    assert {m: ok + failed for m, (ok, failed) in everyone.per_minute.items()} == per_minute

    # The pages show what the rollups hold: a final minute (before the watermark) no attempt made.
    await db.execute(
        "INSERT INTO delivery_rollups VALUES"
        " ('acme', date_trunc('minute', now()) - interval '10 minutes', 'direct.example', 'ok', 7, 70, $1, $2),"
        " ('acme', date_trunc('minute', now()) - interval '10 minutes', 'direct.example', 'timeout', 2, 9, $1, $2)",
        [0, 7, 0, 0, 0, 0, 0, 2, 0, 0],
        [0] * 10,
    )
    async with secured() as client:
        await sign_in(client, ADMIN_KEY)
        overview = (await client.get("/ui")).text
        page = (await client.get("/ui/destinations")).text
    assert 'Attempts per minute, last hour <span class="muted">(peak 9)' in overview
    assert 'Attempts per hour, last day <span class="muted">(peak' in overview
    rows = {m.group(1): m.group(2) for m in re.finditer(r">([a-z.:0-9]+)</a></td><td>(\d+)</td>", page)}
    assert rows == {"example.com:8080": "1", "other.example": "1", "direct.example": "9"}
    assert "77.8 %" in page  # direct.example: 7 of 9
    assert "30.0 ms" in page  # p50 of example.com:8080


# -- schedules ------------------------------------------------------------------------------


async def make_schedule(client: httpx.AsyncClient, key: str = ADMIN_KEY, **fields: Any) -> int:
    body = {"cron": "0 9 * * 1-5", "timezone": "Europe/Berlin", "url": URL, **fields}
    response = await client.post("/schedules", json=body, headers=bearer(key))
    assert response.status_code == 201, response.text
    schedule_id: int = response.json()["schedule_id"]
    return schedule_id


async def schedule_status(db: asyncpg.Connection, schedule_id: int) -> str:
    status: str = await db.fetchval("SELECT status FROM schedules WHERE id = $1", schedule_id)
    return status


async def test_the_schedules_list_describes_filters_and_pages(
    secured: Callable[..., Any], db: asyncpg.Connection
) -> None:
    async with secured() as client:
        daily = await make_schedule(client, labels={"team": "billing"})
        every = await make_schedule(client, cron="@every 90s", timezone="UTC", labels={"team": "ops"})
        run = (await client.post(f"/schedules/{daily}/trigger", headers=bearer(ADMIN_KEY))).json()
        await db.execute(
            "UPDATE timers SET status = 'failed', last_error = 'attempt 1: HTTP 503' WHERE id = $1",
            run["timer_id"],
        )
        await sign_in(client, ADMIN_KEY)
        listing = await client.get("/ui/schedules")
        billing = await client.get("/ui/schedules?label=team%3Abilling")
        paused_only = await client.get("/ui/schedules?status=paused")
        bad_status = await client.get("/ui/schedules?status=asleep")
        bad_label = await client.get("/ui/schedules?label=nocolon")
        bad_cursor = await client.get("/ui/schedules?cursor=x")
        more = [await make_schedule(client) for _ in range(50)]
        first = await client.get("/ui/schedules")
        match = re.search(r'href="/ui/schedules(\?[^"]*cursor=[^"]+)" id="next-page"', first.text)
        assert match
        second = await client.get("/ui/schedules" + html.unescape(match.group(1)))
    assert listing.status_code == 200
    assert 'href="/ui/schedules" aria-current="page"' in listing.text
    assert "at 09:00 on weekdays, Europe/Berlin" in listing.text
    assert "Europe/Berlin" in listing.text
    assert "CET" in listing.text or "CEST" in listing.text  # the next run in the schedule's zone
    assert f'href="/ui/timers/{run["timer_id"]}"' in listing.text  # the last outcome, to its timer
    assert "status-failed" in listing.text
    assert "none yet" in listing.text  # the @every schedule has only its pending run
    assert f'data-schedule-id="{daily}"' in billing.text
    assert f'data-schedule-id="{every}"' not in billing.text
    assert "No schedules match." in paused_only.text
    assert bad_status.status_code == bad_label.status_code == bad_cursor.status_code == 422
    ids = set(map(int, re.findall(r'data-schedule-id="(\d+)"', first.text + second.text)))
    assert ids == {daily, every, *more}
    assert 'id="next-page"' not in second.text


async def test_the_schedule_page_shows_fields_next_runs_and_last_runs(
    secured: Callable[..., Any], db: asyncpg.Connection
) -> None:
    async with secured() as client:
        schedule_id = await make_schedule(
            client, headers={"Authorization": "Bearer s3cret"}, labels={"team": "billing"}, max_runs=7
        )
        runs = [
            (await client.post(f"/schedules/{schedule_id}/trigger", headers=bearer(ADMIN_KEY))).json()
            for _ in range(21)
        ]
        await db.execute(
            "UPDATE timers SET status = 'delivered', delivered_at = now() WHERE id = $1", runs[-1]["timer_id"]
        )
        await sign_in(client, ADMIN_KEY)
        page = await client.get(f"/ui/schedules/{schedule_id}")
        match = re.search(r'href="/ui/schedules/\d+(\?cursor=[^"]+)" id="older-runs"', page.text)
        assert match
        older = await client.get(f"/ui/schedules/{schedule_id}{html.unescape(match.group(1))}")
        missing = [await client.get(path) for path in ("/ui/schedules/999999", "/ui/schedules/x1")]
    assert page.status_code == 200
    text = page.text
    assert "at 09:00 on weekdays, Europe/Berlin" in text
    assert "s3cret" not in text
    assert "[redacted]" in text
    assert "team:billing" in text
    assert "0 of 7" in text
    next_runs = re.search(r'<table id="next-runs-table">(.*?)</table>', text, re.DOTALL)
    assert next_runs
    assert next_runs.group(1).count("<tr>") == 1 + 5  # the heading and the next five
    assert "CET" in next_runs.group(1) or "CEST" in next_runs.group(1)
    shown = [int(i) for i in re.findall(r'<tr data-timer-id="(\d+)"', text)]
    assert shown == sorted(shown, reverse=True)  # newest first
    assert shown[0] == runs[-1]["timer_id"]
    assert len(shown) == 20
    assert "status-delivered" in text
    assert f'href="/ui/timers/{runs[-1]["timer_id"]}"' in text
    assert "run now" in text  # a triggered run has no occurrence
    for button in ('id="pause"', 'id="run-now"'):
        assert button in text
    assert 'id="resume"' not in text
    assert older.status_code == 200
    rest = {int(i) for i in re.findall(r'<tr data-timer-id="(\d+)"', older.text)}
    assert {r["timer_id"] for r in runs} - set(shown) <= rest
    assert [m.status_code for m in missing] == [404, 404]


async def test_pause_resume_and_run_now_from_the_schedule_page(
    secured: Callable[..., Any], db: asyncpg.Connection
) -> None:
    async with secured() as client:
        schedule_id = await make_schedule(client)
        await sign_in(client, ADMIN_KEY)
        path = f"/ui/schedules/{schedule_id}"
        token = await csrf(client, path)
        assert (await client.post(f"{path}/pause", data={})).status_code == 403  # no CSRF token
        assert await schedule_status(db, schedule_id) == "active"
        paused = await client.post(f"{path}/pause", data={"csrf": token})
        assert paused.status_code == 303
        assert paused.headers["location"] == path
        assert await schedule_status(db, schedule_id) == "paused"
        page = (await client.get(path)).text
        assert 'id="resume"' in page
        assert 'id="pause"' not in page
        again = await client.post(f"{path}/pause", data={"csrf": token})
        assert again.status_code == 409
        assert "is paused and cannot be paused" in again.text
        assert (await client.post(f"{path}/resume", data={"csrf": token})).status_code == 303
        assert await schedule_status(db, schedule_id) == "active"
        before = await db.fetchval("SELECT count(*) FROM timers WHERE schedule_id = $1", schedule_id)
        ran = await client.post(f"{path}/trigger", data={"csrf": token})
        assert ran.status_code == 303
        shown = (await client.get(ran.headers["location"])).text
        triggered = await db.fetchval(
            "SELECT max(id) FROM timers WHERE schedule_id = $1 AND occurrence_at IS NULL", schedule_id
        )
        assert (
            await db.fetchval("SELECT count(*) FROM timers WHERE schedule_id = $1", schedule_id) == before + 1
        )
        assert f"run {triggered} created" in shown
        assert f'<tr data-timer-id="{triggered}"' in shown
        ended = await client.delete(f"/schedules/{schedule_id}", headers=bearer(ADMIN_KEY))
        assert ended.status_code == 200
        page = (await client.get(path)).text
        assert 'id="run-now"' not in page
        assert (await client.post(f"{path}/trigger", data={"csrf": token})).status_code == 409


async def test_a_reader_sees_no_schedule_buttons_and_is_refused(
    secured: Callable[..., Any], db: asyncpg.Connection
) -> None:
    async with secured() as client:
        reader = await make_key(client, "default", "reader")
        schedule_id = await make_schedule(client)
        await sign_in(client, reader)
        path = f"/ui/schedules/{schedule_id}"
        page = await client.get(path)
        assert page.status_code == 200
        for button in ('id="pause"', 'id="resume"', 'id="run-now"'):
            assert button not in page.text
        token = csrf_of(page.text)  # the sign-out form's: the session's token
        for action in ("pause", "resume", "trigger"):
            refused = await client.post(f"{path}/{action}", data={"csrf": token})
            assert refused.status_code == 403, action
            assert "does not allow this" in refused.text
    assert await schedule_status(db, schedule_id) == "active"
    assert await db.fetchval("SELECT count(*) FROM timers WHERE schedule_id = $1", schedule_id) == 1


async def test_another_tenants_schedule_is_not_found(
    secured: Callable[..., Any], db: asyncpg.Connection
) -> None:
    async with secured() as client:
        acme = await make_key(client, "acme", "writer")
        globex = await make_key(client, "globex", "writer")
        schedule_id = await make_schedule(client, acme)
        own = await make_schedule(client, globex)
        await sign_in(client, globex)
        listing = await client.get("/ui/schedules")
        assert f'data-schedule-id="{own}"' in listing.text
        assert f'data-schedule-id="{schedule_id}"' not in listing.text
        path = f"/ui/schedules/{schedule_id}"
        assert (await client.get(path)).status_code == 404
        token = csrf_of(listing.text)
        for action in ("pause", "resume", "trigger"):
            assert (await client.post(f"{path}/{action}", data={"csrf": token})).status_code == 404, action
    assert await schedule_status(db, schedule_id) == "active"


# -- timers by destination host and last error class ----------------------------------------


async def test_timers_by_destination_host(secured: Callable[..., Any]) -> None:
    async with secured() as client:
        plain = await make_timer(client, url="http://api.example.net/hook")
        port = await make_timer(client, url="http://user:pw@API.example.net:8443/hook?x=1")
        await make_timer(client, url="http://example.com/hook")
        await make_timer(client, url="http://apixexample.net/hook")  # `_` is literal, not any character
        await sign_in(client, ADMIN_KEY)
        any_port = await client.get("/ui/timers?host=API.example.net")
        one_port = await client.get("/ui/timers?host=api.example.net%3A8443")
        pasted = await client.get("/ui/timers?host=https%3A%2F%2Fapi.example.net%2Fsome%2Fpath")
        wildcard = await client.get("/ui/timers?host=api_example.net")
        bad = await client.get("/ui/timers?host=a%20b")
        destinations = await client.get("/ui/destinations")

    def shown(page: httpx.Response) -> set[int]:
        assert page.status_code == 200, page.text
        return set(map(int, re.findall(r'data-timer-id="(\d+)"', page.text)))

    assert shown(any_port) == shown(pasted) == {plain, port}
    assert shown(one_port) == {port}
    assert shown(wildcard) == set()
    assert 'id="scan-note"' in any_port.text
    assert 'value="API.example.net"' in any_port.text  # the form keeps what was typed
    assert bad.status_code == 422
    assert destinations.status_code == 200


async def test_timers_by_last_error_class(secured: Callable[..., Any], db: asyncpg.Connection) -> None:
    async with secured() as client:
        retried, timed_out, delivered = [await make_timer(client) for _ in range(3)]
        await db.execute(
            "INSERT INTO timer_attempts VALUES"
            " ($1, 1, now(), 5000, NULL, 'timeout', 'timeout: no answer', NULL),"
            " ($1, 2, now(), 12.5, 503, 'http_status', 'HTTP 503', 'down'),"
            " ($2, 1, now(), 5000, NULL, 'timeout', 'timeout: no answer', NULL),"
            " ($3, 1, now(), 9, 200, NULL, NULL, NULL)",
            retried,
            timed_out,
            delivered,
        )
        await sign_in(client, ADMIN_KEY)
        pages = {
            name: await client.get(f"/ui/timers?error_class={name}")
            for name in ("timeout", "http_status", "connection")
        }
        both = await client.get("/ui/timers?error_class=timeout&host=example.com&label=")
        bad = await client.get("/ui/timers?error_class=DROP%20TABLE")
        form = await client.get("/ui/timers")
    found = {
        name: set(map(int, re.findall(r'data-timer-id="(\d+)"', page.text))) for name, page in pages.items()
    }
    assert found == {"timeout": {timed_out}, "http_status": {retried}, "connection": set()}
    assert set(map(int, re.findall(r'data-timer-id="(\d+)"', both.text))) == {timed_out}
    assert bad.status_code == 422
    assert '<option value="timeout">' in form.text  # the known classes are offered


async def test_a_host_search_reads_bounded_windows_and_pages_on(
    secured: Callable[..., Any], db: asyncpg.Connection
) -> None:
    from task_scheduler.ui.service import SEARCH_WINDOW

    async with secured() as client:
        await db.execute(
            "INSERT INTO timers (url, due_at) SELECT 'http://example.com/hook', now() + interval '1 day'"
            " + make_interval(secs => i) FROM generate_series(1, $1) AS i",
            2 * SEARCH_WINDOW + 10,
        )
        wanted = set(
            await db.fetch(
                "INSERT INTO timers (url, due_at) SELECT 'http://rare.example/hook', now() + interval '2 days'"
                " + make_interval(secs => i) FROM generate_series(1, 3) AS i RETURNING id"
            )
        )
        await sign_in(client, ADMIN_KEY)
        path, found, pages = "/ui/timers?host=rare.example", set(), 0
        while path:
            page = await client.get(path)
            assert page.status_code == 200, page.text
            pages += 1
            rows = set(map(int, re.findall(r'data-timer-id="(\d+)"', page.text)))
            if not rows:
                assert "None among these" in page.text
            found |= rows
            match = re.search(r'href="/ui/timers(\?[^"]+)" id="next-page"', page.text)
            path = "/ui/timers" + html.unescape(match.group(1)) if match else ""
            assert pages < 10
        token = await csrf(client)
        form = {"csrf": token, "action": "cancel", "scope": "all", "host": "rare.example"}
        confirm = await client.post("/ui/timers/bulk", data=form)
        assert re.search(r'id="matching-count">3<', confirm.text), confirm.text
        assert "rare.example" in confirm.text
        done = await client.post("/ui/timers/bulk", data={**form, "confirmed": "yes"})
        assert done.status_code == 303
    assert found == {r["id"] for r in wanted}
    assert pages == 3  # two windows of others read to their end, then the matches
    statuses = await db.fetch("SELECT url, status, count(*) AS n FROM timers GROUP BY url, status")
    assert {(r["url"], r["status"], r["n"]) for r in statuses} == {
        ("http://example.com/hook", "pending", 2 * SEARCH_WINDOW + 10),
        ("http://rare.example/hook", "cancelled", 3),
    }
