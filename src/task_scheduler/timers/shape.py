"""One timer shape: the value objects a timer's fields travel in, and the one mapping between
them and the flat columns of the `timers` table.

`TimerSpec` is what a client sets on a timer; the stored row, the new timer and the claimed
timer extend it, and the webhook request carries its `RequestSpec`. A value object's fields are
columns of their own (`retry.max_attempts` is the column `max_attempts`), so every column list
(SELECT, INSERT, the claim's RETURNING, the editable columns) is generated from these classes by
`Flat`: adding a timer field means adding it here, to the table, the migration and the API schema.
`StoredSpec` adds what the service keeps with a timer that no client edits (its `traceparent`).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from operator import attrgetter, itemgetter
from typing import Any, Generic, TypeVar

from pydantic import JsonValue


@dataclass(frozen=True, slots=True)
class RawJson:
    """A JSON value (neither a string nor null) kept as the text PostgreSQL gave, never parsed:
    a claimed timer's body, and a schedule's on its way to its next run. Parsed, a 64-KiB body
    of small arrays or objects took 25 times its size in Python objects, and the dispatcher
    holds up to thousands of claimed timers: one tenant's bodies ran an instance out of memory."""

    text: str


def body_from_text(text: str | None) -> JsonValue | RawJson:
    """A body read as `body::text`: None for SQL or JSON null (the default body), a JSON
    string as its str (sent as text/plain), anything else as RawJson (sent as it is)."""
    if text is None or text == "null":
        return None
    if text.startswith('"'):
        string: str = json.loads(text)  # jsonb's own output: always valid, 1x its size
        return string
    return RawJson(text)


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """What the webhook sends: the method, the timer's own headers and the body (None: the
    default JSON body; RawJson: JSON text passed along unparsed)."""

    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    body: JsonValue | RawJson = None


@dataclass(frozen=True, slots=True)
class RetrySpec:
    """The retry policy a timer asks for; a field left None takes the service's default at firing
    time."""

    max_attempts: int | None = None
    backoff_base_seconds: float | None = None
    backoff_cap_seconds: float | None = None
    timeout_seconds: float | None = None

    def or_defaults(self, defaults: RetrySpec) -> RetrySpec:
        """The policy in force: each field the timer leaves unset taken from `defaults`."""
        return RetrySpec(**{name: getattr(self, name) or getattr(defaults, name) for name in _RETRY_FIELDS})

    def problem(self) -> str | None:
        """What is out of the API's bounds (RETRY_BOUNDS), for a policy read back from a row
        written from outside: NaN, infinite or negative numbers; None when all is well."""
        for name, (low, high) in RETRY_BOUNDS.items():
            value = getattr(self, name)
            if value is not None and not low <= value <= high:  # False for NaN too
                return f"retry.{name} is out of bounds ({low}-{high}): {value!r}"
        return None


# The bounds of each retry field (the API's schema and the claim's check of a stored row).
RETRY_BOUNDS: dict[str, tuple[float, float]] = {
    "max_attempts": (1, 100),
    "backoff_base_seconds": (0.01, 86_400),
    "backoff_cap_seconds": (0.01, 604_800),
    "timeout_seconds": (0.1, 3600),
}


_RETRY_FIELDS = tuple(f.name for f in dataclasses.fields(RetrySpec))
VALUE_OBJECTS: tuple[type, ...] = (RequestSpec, RetrySpec)


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerSpec:
    """What a client sets on a timer, as stored (the due time is the caller's own business)."""

    url: str
    request: RequestSpec = field(default_factory=RequestSpec)
    labels: dict[str, str] = field(default_factory=dict)
    # Delivery must start before this instant, else the timer ends `expired`.
    deliver_before: datetime | None = None
    retry: RetrySpec = field(default_factory=RetrySpec)
    # Called once, by a timer of their own, when this one ends delivered (success) or failed or
    # expired (failure): delivery/notifications.py.
    on_success_url: str | None = None
    on_failure_url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredSpec(TimerSpec):
    """A TimerSpec with what the service keeps beside it, set on create and never edited."""

    # The W3C traceparent of the create request's span (tracing on): its deliveries continue that
    # trace. Any text may be stored; the dispatcher parses it and ignores a malformed one.
    traceparent: str | None = None
    # The destination whose breaker and pause switch hold it (destinations/): the key given on
    # create, else the URL's origin, set when the timer is inserted.
    destination: str | None = None


T = TypeVar("T")


class Flat(Generic[T]):
    """A dataclass seen as flat columns: each of its fields is a column, but a value object
    (`RequestSpec`, `RetrySpec`), whose fields are columns in its place."""

    def __init__(self, cls: type[T]) -> None:
        self._cls = cls
        hints = typing.get_type_hints(cls)
        plain: list[str] = []
        self._enums: list[tuple[str, type[Enum]]] = []
        self._nested: list[tuple[str, type, Callable[[Mapping[Any, Any]], tuple[Any, ...]]]] = []
        paths: dict[str, tuple[str, ...]] = {}
        defaults: dict[str, Callable[[], Any]] = {}
        for outer in dataclasses.fields(cls):  # type: ignore[arg-type]
            hint = hints[outer.name]
            if hint in VALUE_OBJECTS:
                inner = dataclasses.fields(hint)
                self._nested.append((outer.name, hint, _items(*(f.name for f in inner))))
                for f in inner:
                    paths[f.name] = (outer.name, f.name)
                    defaults[f.name] = _default_of(f)
                continue
            plain.append(outer.name)
            paths[outer.name] = (outer.name,)
            if isinstance(hint, type) and issubclass(hint, Enum):
                self._enums.append((outer.name, hint))
            if outer.default is not dataclasses.MISSING or outer.default_factory is not dataclasses.MISSING:
                defaults[outer.name] = _default_of(outer)
        self._plain = tuple(plain)
        self._plain_values = _items(*plain)
        self.columns: tuple[str, ...] = tuple(paths)
        # Where each column sits in the object: ("retry", "max_attempts"), ("url",).
        self.paths = paths
        self._defaults = defaults
        self.getters: dict[str, Callable[[T], Any]] = {c: attrgetter(".".join(p)) for c, p in paths.items()}

    def default(self, column: str) -> object:
        """The value a column takes when not given (raises KeyError if it has none)."""
        return self._defaults[column]()

    def kwargs(self, values: Mapping[Any, Any]) -> dict[str, Any]:
        """The class's constructor arguments from a value for each of its columns."""
        kwargs = dict(zip(self._plain, self._plain_values(values), strict=True))
        for name, enum in self._enums:
            kwargs[name] = enum(kwargs[name])
        for name, value_object, inner_values in self._nested:
            kwargs[name] = value_object(*inner_values(values))
        return kwargs

    def build(self, values: Mapping[Any, Any]) -> T:
        return self._cls(**self.kwargs(values))

    def flatten(self, obj: T) -> dict[str, Any]:
        return {column: get(obj) for column, get in self.getters.items()}


def _items(*keys: str) -> Callable[[Mapping[Any, Any]], tuple[Any, ...]]:
    """Like itemgetter(*keys), but a tuple for one key too."""
    get = itemgetter(*keys)
    return (lambda m: (get(m),)) if len(keys) == 1 else get


def _default_of(f: dataclasses.Field[Any]) -> Callable[[], Any]:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory
    value = f.default
    return lambda: value
