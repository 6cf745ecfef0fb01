"""Text PostgreSQL cannot take (a NUL, a lone surrogate) in every string a client can send, found
from the served OpenAPI document, so a new route or field is covered without a new test: each
documented example body with one string replaced, and each string query parameter. Invariant:
never a 5xx (a NUL in a bulk filter reached PostgreSQL and answered 500), every 4xx is the error
envelope and names the problem."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

# Written into the request's JSON text as escapes: a NUL, and a lone surrogate (valid JSON text,
# not valid Unicode once decoded).
UNSTORABLE = {"nul": "a\\u0000b", "surrogate": "a\\ud800b"}


def string_leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Where the strings are (keys of objects included, as ("key", name))."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from string_leaves(item, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield (*path, ("key", key))
            yield from string_leaves(item, (*path, key))


MARK = "\u2063unstorable\u2063"  # replaced in the JSON text by an escape that json.dumps would not write


def replaced(value: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return MARK
    head, *rest = path
    if isinstance(head, tuple):  # a key
        return {(MARK if k == head[1] else k): v for k, v in value.items()}
    copy = list(value) if isinstance(value, list) else dict(value)
    copy[head] = replaced(value[head], tuple(rest))
    return copy


def body_cases(spec: dict[str, Any]) -> Iterator[tuple[str, str, Any, tuple[Any, ...]]]:
    schemas = spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            ref = schema.get("schema", {}).get("$ref", "")
            for example in schemas.get(ref.rsplit("/", 1)[-1], {}).get("examples", []) if ref else []:
                for leaf in string_leaves(example):
                    yield method.upper(), path, example, leaf


def query_cases(spec: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                kinds = [schema, *schema.get("anyOf", [])]
                types = {k.get("type") for k in kinds} | {k.get("items", {}).get("type") for k in kinds}
                if parameter["in"] == "query" and "string" in types:
                    yield method.upper(), path, parameter["name"]


async def existing_ids(api: httpx.AsyncClient) -> dict[str, str]:
    timer = await api.post("/timer", json={"seconds": 3600, "url": "http://example.com/hook"})
    schedule = await api.post("/schedules", json={"cron": "0 0 1 1 *", "url": "http://example.com/hook"})
    assert timer.status_code == schedule.status_code == 201, (timer.text, schedule.text)
    return {
        "timer_id": str(timer.json()["timer_id"]),
        "schedule_id": str(schedule.json()["schedule_id"]),
        "job_id": "1",
        "key_id": "abc",
        "secret_id": "1",
        "webhook_id": "1",
    }


def concrete(path: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    return path.replace("{", "").replace("}", "")  # any other parameter: its own name


def check(response: httpx.Response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["code"], f"{what}: {response.text[:300]}"
        assert error["message"], f"{what}: {response.text[:300]}"


async def test_unstorable_text_in_any_body_string_is_refused_not_a_500(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    ids = await existing_ids(api)
    cases = list(body_cases(spec))
    assert len(cases) > 50  # the document's examples are found (a broken walk would test nothing)
    refused = 0
    for method, path, example, leaf in cases:
        for name, escape in UNSTORABLE.items():
            text = json.dumps(replaced(example, leaf)).replace(json.dumps(MARK)[1:-1], escape)
            response = await api.request(
                method, concrete(path, ids), content=text, headers={"Content-Type": "application/json"}
            )
            check(response, f"{method} {path} {name} at {leaf}")
            refused += response.status_code in (400, 422)
    assert refused > len(cases)  # most are refused by validation, as they should be


async def test_unstorable_text_in_any_query_parameter_is_refused_not_a_500(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    ids = await existing_ids(api)
    cases = list(query_cases(spec))
    assert len(cases) > 6  # labels (lists of strings) and cursors among them
    for method, path, name in cases:
        for value in ("a\x00b", "key:a\x00b"):
            response = await api.request(method, concrete(path, ids), params={name: value})
            check(response, f"{method} {path}?{name}")


# The dashboard's pages are not in the OpenAPI document: their filters, as a browser sends them.
UI_PAGES = ["/ui", "/ui/timers", "/ui/destinations", "/ui/schedules", "/ui/live.json"]
UI_FILTERS = ["status", "label", "host", "error_class", "due_after", "due_before", "id", "cursor"]


async def test_unstorable_text_in_any_dashboard_filter_is_refused_not_a_500(api: httpx.AsyncClient) -> None:
    assert (await api.get("/ui")).status_code == 200  # a loopback caller in open mode: the local admin
    for page in UI_PAGES:
        for name in UI_FILTERS:
            for value in ("a\x00b", "k:a\x00b", "\x01", "a\x7fb"):
                response = await api.get(page, params={name: value})
                assert response.status_code < 500, f"{page}?{name}={value!r}: {response.status_code}"
