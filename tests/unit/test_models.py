"""The timer state machine is written down once; the schema and the SQL agree with it."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
from sqlalchemy import CheckConstraint, TextClause

from task_scheduler.db import MIGRATIONS_DIR
from task_scheduler.timers import models, repository
from task_scheduler.timers.models import ALLOWED_TRANSITIONS, FINISHED, TimerStatus, timers

STATUSES = {s.value for s in TimerStatus}
Transition = tuple[TimerStatus, TimerStatus]


def _in_list(sql: str) -> set[str]:
    match = re.search(r"status IN \(([^)]*)\)", sql)
    assert match, sql
    return set(re.findall(r"'(\w+)'", match.group(1)))


def test_statuses() -> None:
    assert sorted(STATUSES) == [
        "cancelled",
        "delivered",
        "expired",
        "failed",
        "firing",
        "pending",
    ]


def test_every_status_has_an_entry_and_targets_are_statuses() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(TimerStatus)
    for targets in ALLOWED_TRANSITIONS.values():
        assert targets <= set(TimerStatus)


def test_delivered_and_cancelled_are_terminal() -> None:
    assert ALLOWED_TRANSITIONS[TimerStatus.DELIVERED] == frozenset()
    assert ALLOWED_TRANSITIONS[TimerStatus.CANCELLED] == frozenset()


def test_failed_and_expired_can_only_be_redriven_to_pending() -> None:
    assert ALLOWED_TRANSITIONS[TimerStatus.FAILED] == {TimerStatus.PENDING}
    assert ALLOWED_TRANSITIONS[TimerStatus.EXPIRED] == {TimerStatus.PENDING}


def test_finished_statuses_are_the_ones_nothing_fires_from() -> None:
    assert {TimerStatus.PENDING, TimerStatus.FIRING}.isdisjoint(FINISHED)
    assert FINISHED | {TimerStatus.PENDING, TimerStatus.FIRING} == set(TimerStatus)
    for status in FINISHED:
        assert TimerStatus.FIRING not in ALLOWED_TRANSITIONS[status]


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
    (check,) = [
        c for c in timers.constraints if isinstance(c, CheckConstraint) and c.name == "ck_timers_status"
    ]
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


# -- the docstring table ---------------------------------------------------------------------

_TABLE_ROW = re.compile(r"^\s{4}(\w+)\s+(\w+)\s+(\w+(?: / \w+)*)\s{2,}\S")


def _documented() -> list[tuple[TimerStatus, TimerStatus, list[str]]]:
    """(from, to, repository functions) for each row of the table in models' docstring."""
    rows = []
    for line in (models.__doc__ or "").splitlines():
        match = _TABLE_ROW.match(line)
        if match and match.group(1) != "from":
            source, target, functions = match.groups()
            rows.append((TimerStatus(source), TimerStatus(target), functions.split(" / ")))
    return rows


def test_docstring_table_is_the_allowed_transitions() -> None:
    documented = {(source, target) for source, target, _ in _documented()}
    allowed = {(s, t) for s, targets in ALLOWED_TRANSITIONS.items() for t in targets}
    assert documented == allowed


# -- the SQL ----------------------------------------------------------------------------------

_SET_CLAUSE = re.compile(r"\bSET\b([\s\S]*?)\bWHERE\b")
_SET_STATUS = re.compile(r"(?<![\w.])status = '(\w+)'")
# The first status test after WHERE, with or without a table alias (`t.status`).
_FROM_STATUS = re.compile(r"\bWHERE\b[\s\S]*?\b(?:\w+\.)?status (?:= '(\w+)'|IN \(([^)]*)\))")


def transitions_of(sql: str, name: str = "sql") -> set[Transition]:
    """The (from, to) pairs an UPDATE can make; one that keeps the status makes (s, s)."""
    where_from = _FROM_STATUS.search(sql)
    set_clause = _SET_CLAUSE.search(sql)
    set_to = _SET_STATUS.search(set_clause.group(1) if set_clause else sql)
    assert where_from, f"{name} is an UPDATE without a WHERE on the current status"
    single, listed = where_from.groups()
    sources = {single} if single else set(re.findall(r"'(\w+)'", listed))
    assert sources, f"{name}: empty status list"
    return {(TimerStatus(s), TimerStatus(set_to.group(1) if set_to else s)) for s in sources}


def _static_updates() -> dict[str, str]:
    """The repository's module-level UPDATE statements, by constant name."""
    return {
        name: value.text
        for name, value in vars(repository).items()
        if isinstance(value, TextClause) and value.text.lstrip().upper().startswith("UPDATE")
    }


def _render(node: ast.expr, names: dict[str, str]) -> str | None:
    """The text of a string or f-string expression, with `names` filled in and any other
    placeholder as `…`; None when `node` is not a string."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if not isinstance(node, ast.JoinedStr):
        return None
    parts = []
    for value in node.values:
        if isinstance(value, ast.Constant):
            parts.append(str(value.value))
            continue
        assert isinstance(value, ast.FormattedValue)
        expr = value.value
        parts.append(names[expr.id] if isinstance(expr, ast.Name) and expr.id in names else "…")
    return "".join(parts)


def _dynamic_updates() -> dict[str, str]:
    """UPDATE statements a repository function builds at call time (f-string `text(...)`)."""
    module_strings = {name: v for name, v in vars(repository).items() if isinstance(v, str)}
    tree = ast.parse(inspect.getsource(repository))
    found = {}
    for function in tree.body:
        if not isinstance(function, ast.AsyncFunctionDef | ast.FunctionDef):
            continue
        # The first string value of each local name, e.g. `fence = f"... status = ..."`.
        names = dict(module_strings)
        for node in ast.walk(function):
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id not in names
            ):
                rendered = _render(node.value, names)
                if rendered is not None:
                    names[node.targets[0].id] = rendered
        for node in ast.walk(function):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "text"
                and node.args
            ):
                sql = _render(node.args[0], names)
                if sql is not None and sql.lstrip().upper().startswith("UPDATE"):
                    found[function.name] = sql
    return found


def _updates() -> dict[str, str]:
    return {**_static_updates(), **_dynamic_updates()}


def _transitions_by_update() -> dict[str, set[Transition]]:
    return {name: transitions_of(sql, name) for name, sql in _updates().items()}


def _transitions_by_function() -> dict[str, set[Transition]]:
    """Per public repository function, the transitions of the UPDATEs it runs."""
    by_update = _transitions_by_update()
    dynamic = _dynamic_updates()
    result: dict[str, set[Transition]] = {}
    for name, function in vars(repository).items():
        if name.startswith("_") or not inspect.iscoroutinefunction(function):
            continue
        source = inspect.getsource(function)
        made = set(by_update.get(name, set())) if name in dynamic else set()
        for constant in _static_updates():
            if re.search(rf"\b{constant}\b", source):
                made |= by_update[constant]
        result[name] = made
    return result


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "UPDATE timers SET status = 'firing' WHERE id IN "
            "(SELECT id FROM timers WHERE status = 'pending')",
            {(TimerStatus.PENDING, TimerStatus.FIRING)},
        ),
        (
            "UPDATE timers AS t SET status = 'failed' FROM unnest(:ids) AS o(id) "
            "WHERE t.id = o.id AND t.status = 'firing'",
            {(TimerStatus.FIRING, TimerStatus.FAILED)},
        ),
        (
            "UPDATE timers SET due_at = now(), status = 'pending' "
            "WHERE id = :id AND status IN ('failed', 'expired')",
            {
                (TimerStatus.FAILED, TimerStatus.PENDING),
                (TimerStatus.EXPIRED, TimerStatus.PENDING),
            },
        ),
        (
            "UPDATE timers SET lease_expires_at = now() WHERE status = 'firing'",
            {(TimerStatus.FIRING, TimerStatus.FIRING)},
        ),
    ],
    ids=["subquery", "alias", "in-list-set-later", "keeps-status"],
)
def test_transitions_of_reads_sql(sql: str, expected: set[Transition]) -> None:
    assert transitions_of(sql) == expected


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE timers SET status = 'cancelled' WHERE id = :id",
        "UPDATE timers SET status = 'cancelled'",
        "UPDATE timers SET updated_at = now() WHERE id = :id",
    ],
)
def test_an_update_without_a_status_fence_is_refused(sql: str) -> None:
    with pytest.raises(AssertionError, match="without a WHERE on the current status"):
        transitions_of(sql)


def test_a_forbidden_transition_is_seen_as_such() -> None:
    (transition,) = transitions_of(
        "UPDATE timers SET status = 'pending' WHERE id = :id AND status = 'delivered'"
    )
    source, target = transition
    assert target not in ALLOWED_TRANSITIONS[source]


def test_update_pending_is_read_from_its_template() -> None:
    sql = _dynamic_updates()["update_pending"]
    assert "status = 'pending'" in sql
    assert transitions_of(sql) == {(TimerStatus.PENDING, TimerStatus.PENDING)}


def test_status_is_not_an_editable_column() -> None:
    # update_pending builds its SET list from these names; status must never be one.
    assert "status" not in repository.EDITABLE_COLUMNS
    assert "lease_owner" not in repository.EDITABLE_COLUMNS


def test_status_changing_updates_are_found() -> None:
    changing = [
        name
        for name, made in _transitions_by_update().items()
        if any(source != target for source, target in made)
    ]
    # claim, delivered, retry, failed, expired, release, expire leases, cancel, redrive
    assert len(changing) >= 9, changing


def test_every_repository_update_is_an_allowed_transition() -> None:
    for name, made in _transitions_by_update().items():
        for source, target in made:
            assert target in ALLOWED_TRANSITIONS[source], f"{name}: {source} -> {target}"


def test_every_allowed_transition_has_a_repository_update() -> None:
    allowed = {(s, t) for s, targets in ALLOWED_TRANSITIONS.items() for t in targets}
    made = set().union(*_transitions_by_update().values())
    assert made == allowed


def test_each_documented_function_makes_its_transition() -> None:
    by_function = _transitions_by_function()
    for source, target, functions in _documented():
        for function in functions:
            assert function in by_function, f"{function} is not a repository function"
            assert (source, target) in by_function[function], f"{function} does not make {source} -> {target}"


def test_each_bulk_action_takes_timers_only_from_where_the_state_machine_allows() -> None:
    from task_scheduler.bulk.models import ACTION_SOURCES, BulkAction

    targets = {
        BulkAction.CANCEL: TimerStatus.CANCELLED,
        BulkAction.RETRY: TimerStatus.PENDING,
        BulkAction.RESCHEDULE: TimerStatus.PENDING,
    }
    assert set(ACTION_SOURCES) == set(BulkAction)
    for action, sources in ACTION_SOURCES.items():
        assert sources
        for source in sources:
            assert targets[action] in ALLOWED_TRANSITIONS[source], (action, source)
