"""The API's shapes of destinations."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

MAX_RATE = 1_000_000.0
MAX_BURST = 1_000_000
MAX_PARALLELISM = 100_000


class DestinationUpdate(BaseModel):
    """What PUT /destinations/{key} sets; a field left out keeps its value. `paused` holds the
    destination's timers (pending, their attempts untouched) until it is unpaused or resumed; the
    limits hold across every instance: its timers wait (pending) for their turn."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"paused": True}, {"rate_per_second": 100, "burst": 100, "parallelism": 10}]
        },
    )

    paused: StrictBool | SkipJsonSchema[None] = Field(
        default=None, description="true: hold its timers; false: release them. Left out: unchanged."
    )
    rate_per_second: float | None = Field(
        default=None,
        strict=True,
        gt=0,
        le=MAX_RATE,
        allow_inf_nan=False,
        description="Most requests a second, cluster-wide (0.5: 30 a minute); null: unlimited.",
    )
    burst: StrictInt | None = Field(
        default=None,
        ge=1,
        le=MAX_BURST,
        description="Most requests at once after a quiet time (the token bucket's size); null or "
        "left out with a new rate: max(1, ceil(rate_per_second)).",
    )
    parallelism: StrictInt | None = Field(
        default=None,
        ge=1,
        le=MAX_PARALLELISM,
        description="Most requests in flight at once, cluster-wide; null: unlimited.",
    )

    @field_validator("paused", mode="before")
    @classmethod
    def _paused_is_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must be true or false (leave it out to keep it)")
        return value


class DestinationHealth(BaseModel):
    """Its recent attempts, as the delivery rollups hold them (per webhook host and minute)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "window_seconds": 900,
                    "hosts": ["api.example.com:443", "api.example.com"],
                    "attempts": 1200,
                    "succeeded": 1140,
                    "success_rate": 0.95,
                    "p50_ms": 42.5,
                    "p99_ms": 810.0,
                }
            ]
        }
    )

    window_seconds: int = Field(
        description="The window: the last 15 whole minutes, the current one as last folded (the "
        "rollups are folded every SCHEDULER_ROLLUP_INTERVAL_SECONDS)."
    )
    hosts: list[str] = Field(description="The webhook hosts (host:port as URLs write it) counted.")
    attempts: int = Field(ge=0, description="Attempts made in the window, every outcome.")
    succeeded: int = Field(ge=0, description="Of which answered 2xx.")
    success_rate: float | None = Field(description="succeeded / attempts; null without attempts.")
    p50_ms: float | None = Field(
        description="Median response time of the attempts (estimated within duration buckets "
        "whose edges are 10, 50, 100, 250, 500, 1000, 2500, 5000 and 10000 ms); null without attempts."
    )
    p99_ms: float | None = Field(description="99th percentile response time, estimated as p50_ms.")


class DestinationHistoryEntry(BaseModel):
    at: datetime = Field(description="When it happened (the database's clock).")
    event: Literal["opened", "closed", "disabled", "paused", "unpaused", "resumed"] = Field(
        description="opened: the breaker opened (from closed); closed: it closed (a probe or any attempt "
        "succeeded); disabled: the service paused it for failing too long; paused, unpaused, resumed: an "
        "operator's PUT or POST .../resume."
    )
    consecutive_failures: int = Field(ge=0, description="Its failures in a row at that moment.")


class DestinationView(BaseModel):
    key: str = Field(description="The destination: a key given on create, or a URL's origin.")
    paused: bool = Field(description="Its timers are held until it is unpaused.")
    breaker_state: Literal["closed", "open", "half_open"] = Field(
        description="closed: timers go out; open: held after consecutive failures; half_open: one "
        "probe request decides."
    )
    consecutive_failures: int = Field(ge=0, description="Failures (connection, timeout, 5xx) in a row.")
    opened_at: datetime | None = Field(description="When the breaker last opened.")
    failing_since: datetime | None = Field(
        default=None,
        description="When its breaker opened from closed (kept through failed probes); null while closed.",
    )
    disabled_at: datetime | None = Field(
        default=None,
        description="When the service paused it for failing longer than SCHEDULER_BREAKER_DISABLE_AFTER_SECONDS "
        "(no probes until it is unpaused or resumed); null otherwise.",
    )
    updated_at: datetime | None = Field(description="Last change; null for a destination never changed.")
    rate_per_second: float | None = Field(
        default=None, description="Most requests a second, cluster-wide; null: unlimited."
    )
    burst: int | None = Field(
        default=None,
        description="The token bucket's size (requests at once after a quiet time); null without a rate.",
    )
    parallelism: int | None = Field(
        default=None, description="Most requests in flight at once, cluster-wide; null: unlimited."
    )
    waiting: int | None = Field(
        default=None,
        description="Its pending timers due now (held, or about to go out); GET /destinations/{key} only.",
    )
    in_flight: int | None = Field(
        default=None,
        description="Its timers being fired now by any instance (status firing); in GET answers only.",
    )
    slow_start_until: datetime | None = Field(
        default=None,
        description="Until about when its timers go out with a slow start, after its breaker closed "
        "or it was resumed or unpaused (SCHEDULER_SLOW_START_SECONDS): each instance sends it a "
        "tenth of SCHEDULER_MAX_CONCURRENT_PER_HOST requests at once, rising to all of them; null "
        "otherwise.",
    )
    history: list[DestinationHistoryEntry] = Field(
        default_factory=list,
        description="Its last 20 state changes, newest first (a failed probe is not one: the breaker "
        "stays open).",
    )
    health: DestinationHealth | None = Field(
        default=None,
        description="Its recent attempts, for a key that is a URL's origin (figures are kept per "
        "host); null for a key given on create, which may span hosts, and in PUT and resume answers.",
    )


class DestinationPage(BaseModel):
    destinations: list[DestinationView] = Field(
        description="The tenant's destinations that ever failed, were paused or limited, in key order."
    )
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end.")
