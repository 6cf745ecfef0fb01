"""DATABASE_URL conversions: the SQLAlchemy asyncpg URL and the DSN for asyncpg.connect()."""

from __future__ import annotations

import pytest
from sqlalchemy import make_url

from task_scheduler.db import asyncpg_dsn, sqlalchemy_url


@pytest.mark.parametrize(
    "url",
    [
        "postgres://user:secret@db.internal:5433/timers",
        "postgresql://user:secret@db.internal:5433/timers",
        "postgresql+asyncpg://user:secret@db.internal:5433/timers",
    ],
)
def test_every_postgres_spelling_becomes_asyncpg(url: str) -> None:
    assert sqlalchemy_url(url) == "postgresql+asyncpg://user:secret@db.internal:5433/timers"
    assert asyncpg_dsn(url) == "postgresql://user:secret@db.internal:5433/timers"


def test_password_with_reserved_characters_survives_both_conversions() -> None:
    url = "postgresql://user:p%40ss%2Fw%3Ard@localhost/timers"
    assert make_url(sqlalchemy_url(url)).password == "p@ss/w:rd"
    assert make_url(asyncpg_dsn(url)).password == "p@ss/w:rd"


def test_query_parameters_are_kept() -> None:
    url = "postgres://u@localhost/timers?application_name=scheduler"
    assert make_url(sqlalchemy_url(url)).query == {"application_name": "scheduler"}
    assert make_url(asyncpg_dsn(url)).query == {"application_name": "scheduler"}


def test_url_without_credentials_or_port() -> None:
    assert sqlalchemy_url("postgresql:///timers") == "postgresql+asyncpg:///timers"
    assert asyncpg_dsn("postgresql:///timers") == "postgresql:///timers"


@pytest.mark.parametrize(
    "url",
    [
        "mysql://user:secret@db/timers",
        "sqlite:///timers.db",
        "postgresql+psycopg2://user@db/timers",
        "mysql+asyncmy://user@db/timers",
    ],
)
def test_other_databases_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        sqlalchemy_url(url)
    with pytest.raises(ValueError, match="PostgreSQL"):
        asyncpg_dsn(url)
