"""The timer state machine is written down once; the schema and the SQL agree with it."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import CheckConstraint, TextClause

from task_scheduler.db import MIGRATIONS_DIR
from task_scheduler.timers import repository
from task_scheduler.timers.models import ALLOWED_TRANSITIONS, TimerStatus, timers

STATUSES = {s.value for s in TimerStatus}


def _in_list(sql: str) -> set[str]:
    match = re.search(r"status IN \(([^)]*)\)", sql)
    assert match, sql
    return set(re.findall(r"'(\w+)'", match.group(1)))


def test_statuses() -> None:
    assert sorted(STATUSES) == ["delivered", "failed", "firing", "pending"]


def test_every_status_has_an_entry_and_targets_are_statuses() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(TimerStatus)
    for targets in ALLOWED_TRANSITIONS.values():
        assert targets <= set(TimerStatus)


def test_delivered_and_failed_are_terminal() -> None:
    assert ALLOWED_TRANSITIONS[TimerStatus.DELIVERED] == frozenset()
    assert ALLOWED_TRANSITIONS[TimerStatus.FAILED] == frozenset()


def test_every_status_is_reachable_from_pending() -> None:
    reached = {TimerStatus.PENDING}
    frontier = [TimerStatus.PENDING]
    while frontier:
        for target in ALLOWED_TRANSITIONS[frontier.pop()]:
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(TimerStatus)


def test_model_check_constraint_lists_exactly_the_statuses() -> None:
    (check,) = [c for c in timers.constraints if isinstance(c, CheckConstraint)]
    assert check.name == "ck_timers_status"
    assert _in_list(str(check.sqltext)) == STATUSES


def test_migrations_check_constraint_lists_exactly_the_statuses() -> None:
    sources = [p.read_text() for p in sorted((Path(MIGRATIONS_DIR) / "versions").glob("*.py"))]
    constraints = [s for s in sources if "ck_timers_status" in s]
    assert constraints, "no migration creates ck_timers_status"
    assert _in_list(constraints[-1]) == STATUSES


def test_server_default_status_is_pending() -> None:
    default = timers.c.status.server_default
    assert default is not None
    assert "'pending'" in str(default.arg)  # type: ignore[attr-defined]


_SET_STATUS = re.compile(r"SET status = '(\w+)'")
# The first status test after WHERE, with or without a table alias (`t.status`).
_FROM_STATUS = re.compile(r"WHERE[\s\S]*?(?:\w+\.)?status = '(\w+)'")


def _updates() -> dict[str, str]:
    return {
        name: value.text
        for name, value in vars(repository).items()
        if isinstance(value, TextClause) and value.text.lstrip().upper().startswith("UPDATE")
    }


def _status_changes() -> dict[str, tuple[TimerStatus, TimerStatus]]:
    """Each repository UPDATE that changes a status, as (from, to)."""
    changes = {}
    for name, sql in _updates().items():
        set_to = _SET_STATUS.search(sql)
        if set_to is None:
            continue  # touches a lease only, never the status
        where_from = _FROM_STATUS.search(sql)
        assert where_from, f"{name} sets a status without a WHERE on the current status"
        changes[name] = (TimerStatus(where_from.group(1)), TimerStatus(set_to.group(1)))
    return changes


def test_status_changing_updates_are_found() -> None:
    # claim, delivered, retry, failed, release, expire
    assert len(_status_changes()) >= 6


def test_every_status_update_in_the_repository_is_an_allowed_transition() -> None:
    for name, (source, target) in _status_changes().items():
        assert target in ALLOWED_TRANSITIONS[source], f"{name}: {source} -> {target}"


def test_every_allowed_transition_has_a_repository_update() -> None:
    allowed = {(s, t) for s, targets in ALLOWED_TRANSITIONS.items() for t in targets}
    assert set(_status_changes().values()) == allowed


def test_updates_that_leave_the_status_alone_only_touch_firing_timers() -> None:
    for name, sql in _updates().items():
        if _SET_STATUS.search(sql) is None:
            assert "status = 'firing'" in sql, name
