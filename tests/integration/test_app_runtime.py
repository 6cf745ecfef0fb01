"""How the running process treats its memory."""

from __future__ import annotations

import gc
from collections.abc import Callable

from task_scheduler.app import create_app
from task_scheduler.config import Settings
from task_scheduler.timers.schemas import TimerCreate


async def test_start_up_objects_are_kept_out_of_the_cyclic_gc(make_settings: Callable[..., Settings]) -> None:
    """A full collection walks only what the running service creates (pauses of 100+ ms under
    load otherwise); shutting down hands the objects back."""
    app = create_app(make_settings(), run_dispatcher=False)
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() > 10_000
        created = await app.state.timer_service.create(
            TimerCreate(hours=1, url="http://example.com/"), tenant="t"
        )
        assert created[0].timer_id >= 1
    assert gc.get_freeze_count() == 0
