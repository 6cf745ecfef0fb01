"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (schemathesis, in-process ASGI).

Every operation gets its own fresh database and app (`run_dispatcher=False`: nothing fires, so the
generated webhook URLs cause no traffic at all). Schemathesis runs the app's lifespan in its own
event loop on the first request and ends it when the test ends. FUZZ_EXAMPLES sets the examples
per operation of the fuzzing phase (`make fuzz` raises it); the coverage phase's boundary and
negative cases come on top.

In `make test` the examples are derandomized (the same ones every run), so the gate a change must
pass does not change from run to run; `make fuzz` (FUZZ_RANDOM=1) draws new ones each time, to
find what the fixed ones do not: a finding there is fixed and pinned in FINDINGS.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings

from task_scheduler.app import create_app
from task_scheduler.config import Settings
from tests.support.app import running_app

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
RANDOM = os.environ.get("FUZZ_RANDOM") == "1"
ADMIN_KEY = "fuzz-admin-key-0123456789abcdef0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
# Never resolved (RFC 6761), and never called anyway: the dispatcher does not run.
WEBHOOK_URL = "https://fuzz.example.invalid/hook"

# What the app serves at /openapi.json. Loaded from the app object rather than over ASGI so that
# collection needs no database; `schemathesis.pytest.from_fixture` would avoid that, but in
# schemathesis 4.32.5 it fails on pytest 9.2 (it sets `Function._nodeid`, which pytest removed).
OPENAPI = create_app(Settings.model_construct()).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


def _settings(make_settings: Callable[..., Settings]) -> Settings:
    # No rate limit: the fuzzer should reach the handlers, not the token bucket.
    return make_settings(admin_api_key=ADMIN_KEY, rate_limit_per_second=0)


async def _seed(client: httpx.AsyncClient) -> None:
    """Timers 1 and 2 and tenant secret 1, so that generated ids sometimes find something (the
    coverage phase always tries the smallest) rather than only answer 404."""
    client.headers.update(AUTH)
    for seconds in (3600, 7200):
        created = await client.post("/timer", json={"seconds": seconds, "url": WEBHOOK_URL})
        assert created.status_code == 201, created.text
    created = await client.post("/tenant/secrets")
    assert created.status_code == 201, created.text


@pytest.fixture
async def fuzz_app(make_settings: Callable[..., Settings]) -> FastAPI:
    """A fresh, seeded app; its lifespan is started again by schemathesis, in its own loop."""
    app = create_app(_settings(make_settings), run_dispatcher=False)
    async with running_app(app) as client:
        await _seed(client)
    return app


# Product bugs (500s) the fuzzer found, pinned in FINDINGS below: (path prefix, error, what).
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=not RANDOM,
    deadline=None,
    # One app and database serve all the examples of an operation, on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api(case: schemathesis.Case, fuzz_app: FastAPI) -> None:
    # In-process, an unhandled error comes back as the exception itself (after its 500 was sent).
    response = case.call(app=fuzz_app, headers=AUTH)
    case.validate_response(
        response,
        checks=CHECKS,
        headers=AUTH,
        transport_kwargs={"app": fuzz_app, "headers": AUTH},
    )


# Failures the fuzzer found and that were fixed, pinned as plain requests.
_FIXED = pytest.mark.regression


def _finding(
    name: str,
    operation: str,
    url: str,
    mark: pytest.MarkDecorator,
    *,
    expect: int | None = None,
    **request: Any,
) -> Any:
    return pytest.param(operation, url, request, expect, marks=mark, id=name)


FINDINGS = [
    _finding(
        "key-name-nul",
        "POST /admin/keys",
        "/admin/keys",
        _FIXED,
        json={"name": "\x00", "tenant": "t", "role": "reader"},
    ),
    _finding("key-id-nul", "DELETE /admin/keys/{key_id}", "/admin/keys/%00", _FIXED),
    _finding(
        "patch-cutoff-twice",
        "PATCH /timer/{timer_id}",
        "/timer/1",
        _FIXED,
        json={"deliver_before": None, "max_lateness_seconds": 60},
    ),
    _finding(
        "timer-not-utf8",
        "POST /timer",
        "/timer",
        _FIXED,
        content=b"\xff",
        headers={"Content-Type": "application/json"},
    ),
    _finding(
        "timer-text-plain",
        "POST /timer",
        "/timer",
        _FIXED,
        content=b"{}",
        headers={"Content-Type": "text/plain"},
    ),
    _finding(
        "get-timer-0-text-plain",
        "GET /timer/{timer_id}",
        "/timer/0",
        _FIXED,
        headers={"Content-Type": "text/plain"},
        expect=422,
    ),
    _finding(
        "list-due-before-epoch", "GET /timers", "/timers", _FIXED, params={"due_before": "0.5"}, expect=422
    ),
]


@pytest.fixture
async def client(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(create_app(_settings(make_settings), run_dispatcher=False)) as client:
        await _seed(client)
        yield client


@pytest.mark.parametrize(("operation", "url", "request_kwargs", "expect"), FINDINGS)
async def test_fuzz_finding(
    client: httpx.AsyncClient, operation: str, url: str, request_kwargs: dict[str, Any], expect: int | None
) -> None:
    """Never a 5xx; an answer the operation documents, and `expect` if given."""
    method, path = operation.split(" ")
    response = await client.request(method, url, **request_kwargs)
    assert response.status_code < 500, response.text
    if expect is not None:
        assert response.status_code == expect, response.text
    documented = sorted(OPENAPI["paths"][path][method.lower()]["responses"])
    assert str(response.status_code) in documented, f"not in {documented}: {response.text}"
