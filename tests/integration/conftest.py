from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from task_scheduler.app import create_app
from task_scheduler.config import Settings


@asynccontextmanager
async def running_app(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan (database, migrations, dispatcher) and an in-process client."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
async def api(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    """The API without the dispatcher: nothing fires."""
    async with running_app(create_app(make_settings(), run_dispatcher=False)) as client:
        yield client


@pytest.fixture
def service(make_settings: Callable[..., Settings]) -> Callable[..., Any]:
    """`async with service(**settings) as client:` runs the whole service, dispatcher included."""

    def start(**overrides: Any) -> Any:
        return running_app(create_app(make_settings(**overrides)))

    return start
