"""The embedded PostgreSQL's settings are sized to the machine, written where the server reads
them, and included from postgresql.conf exactly once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from task_scheduler.db import machine_memory_bytes, sized_settings, write_sized_settings

GIB = 1024**3


@pytest.mark.parametrize(
    ("memory", "shared_buffers", "effective_cache_size"),
    [
        (512 * 1024**2, "128MB", "256MB"),  # PostgreSQL's own default is the floor
        (2 * GIB, "256MB", "1024MB"),
        (24 * GIB, "3072MB", "12288MB"),
        (256 * GIB, "4096MB", "131072MB"),  # the ceiling: the rest is the OS cache's
    ],
)
def test_shared_buffers_are_an_eighth_of_memory_within_bounds(
    memory: int, shared_buffers: str, effective_cache_size: str
) -> None:
    settings = sized_settings(memory)
    assert settings["shared_buffers"] == shared_buffers
    assert settings["effective_cache_size"] == effective_cache_size
    assert settings["max_wal_size"] == "2GB"


def test_the_settings_file_is_rewritten_and_included_once(tmp_path: Path) -> None:
    conf = tmp_path / "postgresql.conf"
    conf.write_text("#include_if_exists = '...'\nmax_connections = 100\n")
    write_sized_settings(tmp_path, memory_bytes=24 * GIB)
    write_sized_settings(tmp_path, memory_bytes=2 * GIB)
    included = [line for line in conf.read_text().splitlines() if line.startswith("include_if_exists")]
    assert included == ["include_if_exists = 'task_scheduler.conf'"]
    assert "max_connections = 100" in conf.read_text()  # the operator's lines stay
    sized = (tmp_path / "task_scheduler.conf").read_text()
    assert "shared_buffers = '256MB'" in sized  # the last start's machine, not the first's
    assert "3072MB" not in sized


def test_machine_memory_is_positive_and_at_most_physical() -> None:
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < machine_memory_bytes() <= physical
