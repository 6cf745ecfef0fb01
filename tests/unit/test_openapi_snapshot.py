"""The OpenAPI document is part of the public API: a refactor must leave it byte-identical.

A deliberate change to the API regenerates the snapshot: `UPDATE_OPENAPI_SNAPSHOT=1 make test`
(then review the diff of tests/data/openapi.json like any other change).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from task_scheduler.app import create_app
from task_scheduler.config import Settings

SNAPSHOT = Path(__file__).parent.parent / "data" / "openapi.json"


def _served_document() -> str:
    # The same dict FastAPI serves at /openapi.json, rendered with a stable layout.
    spec = create_app(Settings.model_construct()).openapi()
    return json.dumps(spec, indent=2, ensure_ascii=False) + "\n"


def test_the_openapi_document_is_unchanged() -> None:
    document = _served_document()
    if os.environ.get("UPDATE_OPENAPI_SNAPSHOT") == "1":
        SNAPSHOT.write_text(document, encoding="utf-8")
    assert SNAPSHOT.read_text(encoding="utf-8") == document, (
        "the OpenAPI document changed; if that is intended, regenerate tests/data/openapi.json "
        "with UPDATE_OPENAPI_SNAPSHOT=1"
    )


def test_every_route_with_a_body_documents_the_answers_to_an_unreadable_body() -> None:
    """Any body can be unreadable (400), too large (413) or not JSON (415), whatever the route:
    the middleware answers so before the route runs (the fuzzer found a route without them)."""
    spec = json.loads(_served_document())
    missing = {
        f"{method.upper()} {path}": sorted({"400", "413", "415"} - set(operation["responses"]))
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation and not {"400", "413", "415"} <= set(operation["responses"])
    }
    assert missing == {}


def test_the_create_routes_are_matched_before_the_rest() -> None:
    """Routes are matched in order, one by one (about 1.5 us each here): the schedule routes come
    right after the timer routes, so that POST /schedules does not first try the keys, health,
    bulk and event routes (routing 68 -> 25 us per schedule create; docs/performance.md). The
    document lists the paths in the order they are matched."""
    paths = list(json.loads(_served_document())["paths"])
    firsts = [p for p in paths if not p.startswith(("/timer", "/schedules"))]
    assert paths.index("/schedules") < paths.index(firsts[0])
    assert all(p.startswith("/timer") for p in paths[: paths.index("/schedules")])
