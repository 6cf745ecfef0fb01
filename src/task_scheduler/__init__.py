"""Task Scheduler Service: durable, precise, exactly-once webhook timers on PostgreSQL."""

from __future__ import annotations

__version__ = "0.1.0"
