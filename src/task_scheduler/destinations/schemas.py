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


class DestinationView(BaseModel):
    key: str = Field(description="The destination: a key given on create, or a URL's origin.")
    paused: bool = Field(description="Its timers are held until it is unpaused.")
    breaker_state: Literal["closed", "open", "half_open"] = Field(
        description="closed: timers go out; open: held after consecutive failures; half_open: one "
        "probe request decides."
    )
    consecutive_failures: int = Field(ge=0, description="Failures (connection, timeout, 5xx) in a row.")
    opened_at: datetime | None = Field(description="When the breaker last opened.")
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
        description="Its timers being sent now by any instance; GET /destinations/{key} only.",
    )


class DestinationPage(BaseModel):
    destinations: list[DestinationView] = Field(
        description="The tenant's destinations that ever failed, were paused or limited, in key order."
    )
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end.")
