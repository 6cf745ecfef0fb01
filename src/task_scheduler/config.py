"""Service settings, read from the environment (see the README's configuration table)."""

from __future__ import annotations

import math
import os
import socket
import uuid
from pathlib import Path
from typing import Annotated, Literal

from annotated_types import Le
from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from task_scheduler.cpus import usable_cpus

TEN_YEARS_SECONDS = 10 * 365 * 24 * 3600 + 3 * 24 * 3600  # ten years including leap days
# Due times must stay inside what PostgreSQL intervals and Python datetimes can hold.
MAX_HORIZON_LIMIT = 1000 * 366 * 24 * 3600
MAX_WORKERS = 64
# The bounds of every number setting that has none of its own: what the SQL intervals, the
# claim's LIMIT, asyncio's timers and the token buckets can take. Past them (an infinite lease,
# an idempotency window of 1e308 s, a pending cap of 10**30) the service started and then failed
# every claim or every create with a 500, while /readyz said 200.
MAX_SECONDS_SETTING = TEN_YEARS_SECONDS
MIN_SECONDS_SETTING = 0.001  # a millisecond, the service's resolution; 0 where a setting allows it
MAX_NUMBER_SETTING = 2**31 - 1
# `auto` starts one process per usable CPU, at most this many: each process has its own database
# pool (SCHEDULER_DB_POOL_SIZE), and PostgreSQL's default max_connections (100) must leave room
# for several instances. Beyond it, set a number.
AUTO_WORKERS_MAX = 4
# The OTLP/HTTP default of the specification (a collector on this host).
_OTLP_DEFAULT_ENDPOINT = "http://localhost:4318"


def worker_count_of(workers: int | Literal["auto"]) -> int:
    """`SCHEDULER_WORKERS` as a number of processes: auto is the CPUs this process may use, at
    most AUTO_WORKERS_MAX."""
    return min(usable_cpus(), AUTO_WORKERS_MAX) if workers == "auto" else workers


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Settings(BaseSettings):
    """Every setting has a type, a default and a one-line description.

    `DATABASE_URL`, `HOST` and `PORT` keep their conventional names; all others are `SCHEDULER_*`.
    """

    # Errors name the variable and the rule, never the value: DATABASE_URL carries a password.
    model_config = SettingsConfigDict(
        env_prefix="SCHEDULER_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
        description="PostgreSQL URL; unset starts an embedded PostgreSQL in data_dir.",
    )
    host: str = Field(
        default="127.0.0.1",
        validation_alias=AliasChoices("HOST", "host"),
        description="Address the HTTP server binds to.",
    )
    port: int = Field(
        default=8080,
        ge=0,
        le=65535,
        validation_alias=AliasChoices("PORT", "port"),
        description="Port the HTTP server listens on.",
    )
    workers: Annotated[int, Field(ge=1, le=MAX_WORKERS)] | Literal["auto"] = Field(
        default="auto",
        description=(
            "Server processes on this port, each with its own dispatcher and database pool;"
            f" auto: one per usable CPU (affinity and cgroup quota), at most {AUTO_WORKERS_MAX}."
        ),
    )
    data_dir: Path = Field(default=Path(".data"), description="Directory of the embedded PostgreSQL's data.")
    instance_id: str = Field(
        default_factory=_default_instance_id,
        min_length=1,
        max_length=200,
        description="Name of this instance, used as the lease owner; defaults to host-pid-random.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Lowest log level written."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="json lines, readable console lines, or auto (console on a tty).",
    )
    max_horizon_seconds: int = Field(
        default=TEN_YEARS_SECONDS,
        ge=1,
        le=MAX_HORIZON_LIMIT,
        description="Longest accepted timer duration in seconds (at most 1000 years).",
    )
    max_request_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest accepted request body; larger gets 413."
    )
    max_attempts: int = Field(
        default=5, ge=1, le=100, description="Delivery attempts before a timer is failed."
    )
    backoff_base_seconds: float = Field(
        default=40.0, gt=0, description="Base of the exponential retry backoff (full jitter)."
    )
    backoff_cap_seconds: float = Field(default=600.0, gt=0, description="Longest wait between two attempts.")
    connect_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Timeout for connecting to a webhook host."
    )
    request_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Total timeout of one webhook request."
    )
    lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long after its due time a claimed timer stays leased to its instance.",
    )
    lookahead_seconds: float = Field(
        default=2.0, ge=0, le=60, description="Timers due this soon are claimed and held in memory."
    )
    poll_interval_seconds: float = Field(
        default=1.0, gt=0, le=60, description="Fallback poll period when no NOTIFY arrives."
    )
    flow_interval_seconds: float = Field(
        default=0.025,
        gt=0,
        le=1,
        description="Period of the flow-control claim while timers of limited destinations are due.",
    )
    claim_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="Most timers claimed by one query."
    )
    max_in_flight: int = Field(
        default=2_000, ge=1, description="Most claimed timers one instance holds at once."
    )
    max_held_bytes: int = Field(
        default=128 * 1024 * 1024,
        ge=1,
        description="Most memory (bytes, about) the requests of the timers one instance holds may "
        "take (URLs, headers, labels, bodies); no claim while they take more.",
    )
    max_concurrent_deliveries: int = Field(
        default=200, ge=1, description="Most webhook requests one instance sends at once."
    )
    webhook_secrets: str = Field(
        default="",
        description="Comma-separated whsec_ secrets signing webhooks (Standard Webhooks); empty: unsigned.",
    )
    max_webhook_body_bytes: int = Field(
        default=65_536,
        ge=1,
        le=1_048_576,
        description="Largest custom webhook body a timer may carry.",
    )
    idempotency_window_seconds: float = Field(
        default=86_400.0, gt=0, description="How long an Idempotency-Key returns the same timer."
    )
    admin_api_key: SecretStr | None = Field(
        default=None, description="Creates this admin API key at start (at least 32 characters)."
    )
    admin_api_key_file: Path | None = Field(
        default=None, description="File holding the bootstrap admin key (e.g. a Docker secret)."
    )
    api_key_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="How long a key lookup is cached (a revocation takes this long).",
    )
    rate_limit_per_second: float = Field(
        default=0.0,
        ge=0,
        description="Requests per second per API key and instance; 0 (off) lets the owner go full speed.",
    )
    rate_limit_burst: float = Field(
        default=0.0, ge=0, description="Requests a key may send at once; 0 means twice the per-second rate."
    )
    max_pending_per_tenant: int = Field(
        default=1_000_000,
        ge=1,
        description="Most pending timers one tenant may have (checked every few seconds).",
    )
    webhook_allowed_networks: str = Field(
        default="",
        description="Comma-separated CIDRs webhooks may reach although private/loopback, e.g. 10.1.0.0/16.",
    )
    webhook_proxy: str | None = Field(
        default=None, description="http:// URL of an egress proxy all webhooks go through."
    )
    cors_origins: str = Field(
        default="", description="Comma-separated origins allowed by CORS; empty: CORS off."
    )
    ui_session_secret: SecretStr | None = Field(
        default=None,
        description="Extra secret mixed into dashboard session signatures (same on every instance).",
    )
    retention_seconds: float = Field(
        default=604_800.0, gt=0, description="Finished timers and their attempts are deleted after this."
    )
    retention_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often each instance applies retention."
    )
    retention_batch_size: int = Field(
        default=1000, ge=1, le=100_000, description="Timers deleted per short transaction."
    )
    rollup_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How often the dashboard's rollups are folded from the attempt log (by one instance at a time).",
    )
    bulk_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="Timers a bulk job handles per short transaction."
    )
    bulk_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A bulk job whose instance made no batch for this long is taken over by another.",
    )
    bulk_poll_interval_seconds: float = Field(
        default=1.0, gt=0, description="How often each instance looks for a queued bulk job."
    )
    stats_interval_seconds: float = Field(
        default=15.0,
        gt=0,
        description="How often the pending and overdue gauges are refreshed (less often once over "
        "a million timers are pending: each count then waits 50 times its own duration).",
    )
    max_concurrent_per_host: int = Field(
        default=100, ge=1, description="Most webhook requests one instance sends to one host at once."
    )
    max_lease_expiries: int = Field(
        default=5,
        ge=1,
        le=100,
        description="A timer whose lease lapsed this many times (its instances crashed or stalled) is failed.",
    )
    breaker_failures: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Consecutive failures (connection errors, timeouts, 5xx) that open a destination's "
        "circuit breaker: its timers are held, unspent, until a probe succeeds.",
    )
    breaker_cooldown_seconds: float = Field(
        default=30.0,
        gt=0,
        le=86_400,
        description="How long an open circuit breaker waits before one probe request (half-open).",
    )
    breaker_disable_after_seconds: float = Field(
        default=0.0,
        ge=0,
        le=31_536_000,
        description="A destination whose breaker has stayed open this long (every probe failed) is "
        "disabled when its next probe fails: paused, no more probes, `destination.disabled` sent, "
        "until it is unpaused or resumed. 0: never.",
    )
    slow_start_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3_600,
        description="For this long after a destination's held timers are let go (its breaker "
        "closed, or it was resumed), an instance sends it at most a tenth of "
        "SCHEDULER_MAX_CONCURRENT_PER_HOST requests at once, rising evenly to all of it "
        "(slow start). 0: off.",
    )
    readiness_stall_seconds: float = Field(
        default=10.0,
        gt=0,
        description="/readyz answers 503 when an outcome waits this long to be written, or no claim "
        "succeeds for this long plus the poll interval; it stays 200 but lists the dashboard's "
        "rollup fold under degraded once every turn has failed for this long.",
    )
    db_pool_size: int = Field(default=10, ge=1, le=200, description="Database connections per instance.")
    shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, description="How long deliveries in flight may finish on shutdown."
    )
    # OpenTelemetry: the standard OTEL_* names (README "Tracing"); the SDK reads the other OTEL_*
    # variables (headers, timeout, compression, sampler, batch delays, resource) itself.
    otel_sdk_disabled: bool = Field(
        default=False,
        validation_alias=AliasChoices("OTEL_SDK_DISABLED", "otel_sdk_disabled"),
        description="true: tracing off, whatever the other OTEL_* variables say.",
    )
    otel_traces_exporter: Literal["otlp", "none"] | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_TRACES_EXPORTER", "otel_traces_exporter"),
        description="otlp: tracing on; none: off; unset: on when an OTLP endpoint is set.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "otel_exporter_otlp_endpoint"),
        description="Base URL of the OTLP/HTTP receiver; spans go to its /v1/traces. Setting it turns tracing on.",
    )
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "otel_exporter_otlp_traces_endpoint"
        ),
        description="Full URL spans are posted to (wins over the base URL). Setting it turns tracing on.",
    )
    otel_exporter_otlp_protocol: Literal["http/protobuf"] = Field(
        default="http/protobuf",
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "otel_exporter_otlp_protocol",
        ),
        description="The OTLP transport (also read from OTEL_EXPORTER_OTLP_PROTOCOL); only http/protobuf.",
    )

    def bootstrap_admin_key(self) -> str | None:
        """The operator's admin key, from SCHEDULER_ADMIN_API_KEY or the file it names."""
        if self.admin_api_key is not None:
            return self.admin_api_key.get_secret_value()
        if self.admin_api_key_file is not None:
            try:
                return self.admin_api_key_file.read_text().strip()
            except OSError as exc:
                raise ValueError(f"cannot read SCHEDULER_ADMIN_API_KEY_FILE: {exc.strerror}") from None
        return None

    @property
    def worker_count(self) -> int:
        """`workers` as a number (worker_count_of)."""
        return worker_count_of(self.workers)

    @property
    def tracing_enabled(self) -> bool:
        """Whether OpenTelemetry tracing is on: only when the OTEL_* variables ask for it."""
        if self.otel_sdk_disabled or self.otel_traces_exporter == "none":
            return False
        return self.otel_traces_exporter == "otlp" or bool(
            self.otel_exporter_otlp_endpoint or self.otel_exporter_otlp_traces_endpoint
        )

    @property
    def otlp_traces_url(self) -> str:
        """Where spans are posted: the traces endpoint as given, else the base URL's /v1/traces."""
        if self.otel_exporter_otlp_traces_endpoint:
            return self.otel_exporter_otlp_traces_endpoint
        base = self.otel_exporter_otlp_endpoint or _OTLP_DEFAULT_ENDPOINT
        return f"{base.rstrip('/')}/v1/traces"

    @property
    def cors_origin_list(self) -> list[str]:
        return [part.strip() for part in self.cors_origins.split(",") if part.strip()]

    @property
    def webhook_secret_list(self) -> list[str]:
        return [part.strip() for part in self.webhook_secrets.split(",") if part.strip()]

    @field_validator("*", mode="after")
    @classmethod
    def _bounded_number(cls, value: object, info: ValidationInfo) -> object:
        """Numbers finite and within what the service can use (see MAX_SECONDS_SETTING), unless
        the field sets its own upper bound."""
        if isinstance(value, bool) or not isinstance(value, int | float) or info.field_name is None:
            return value
        name = info.field_name
        variable = f"SCHEDULER_{name.upper()}"
        if not math.isfinite(value):
            raise ValueError(f"{variable} must be a finite number")
        if name.endswith("_seconds") and 0 < value < MIN_SECONDS_SETTING:
            raise ValueError(f"{variable} must be 0 or at least {MIN_SECONDS_SETTING} (a millisecond)")
        if any(isinstance(rule, Le) for rule in cls.model_fields[name].metadata):
            return value  # its own upper bound
        if name.endswith("_seconds") and value > MAX_SECONDS_SETTING:
            raise ValueError(f"{variable} must be at most {MAX_SECONDS_SETTING} (ten years)")
        if not name.endswith("_seconds") and value > MAX_NUMBER_SETTING:
            raise ValueError(f"{variable} must be at most {MAX_NUMBER_SETTING}")
        return value

    @field_validator("database_url")
    @classmethod
    def _postgresql_url(cls, value: str | None) -> str | None:
        """A URL the engine and the LISTEN connection can use, checked here so that a malformed
        one is a clear refusal at start, not a traceback (an unclosed `[`, a port of letters, a
        URL that is not one)."""
        if value is None:
            return value
        from sqlalchemy import make_url
        from sqlalchemy.exc import ArgumentError

        from task_scheduler.db import sqlalchemy_url

        try:
            port = make_url(sqlalchemy_url(value)).port
        except ValueError as exc:
            if str(exc).startswith("DATABASE_URL"):  # sqlalchemy_url's own: not PostgreSQL
                raise
            raise ValueError("DATABASE_URL cannot be read as a URL") from None
        except ArgumentError:
            raise ValueError("DATABASE_URL cannot be read as a URL") from None
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"DATABASE_URL has the port {port}, outside 1-65535")
        return value

    @field_validator("otel_sdk_disabled", mode="before")
    @classmethod
    def _otel_boolean(cls, value: object) -> object:
        # The OpenTelemetry rule: only "true" (any case) is true; any other text is false.
        return value.strip().lower() == "true" if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        from task_scheduler.auth.keys import MIN_BOOTSTRAP_KEY_LENGTH
        from task_scheduler.delivery.signing import WebhookSigner
        from task_scheduler.delivery.ssrf import AddressPolicy

        WebhookSigner(self.webhook_secret_list)  # raises InvalidSecret (a ValueError) naming the problem
        AddressPolicy.parse_allowed(self.webhook_allowed_networks)  # a bad CIDR is named
        key = self.bootstrap_admin_key()
        if key is not None and len(key) < MIN_BOOTSTRAP_KEY_LENGTH:
            raise ValueError(
                f"SCHEDULER_ADMIN_API_KEY must be at least {MIN_BOOTSTRAP_KEY_LENGTH} characters"
            )
        if self.webhook_proxy is not None and not self.webhook_proxy.startswith(("http://", "https://")):
            raise ValueError("SCHEDULER_WEBHOOK_PROXY must be an http:// or https:// URL")
        if self.lease_seconds <= self.request_timeout_seconds:
            raise ValueError(
                "SCHEDULER_LEASE_SECONDS must be larger than SCHEDULER_REQUEST_TIMEOUT_SECONDS, "
                "or another instance could fire a timer whose request is still running"
            )
        if self.backoff_cap_seconds < self.backoff_base_seconds:
            raise ValueError("SCHEDULER_BACKOFF_CAP_SECONDS must be at least SCHEDULER_BACKOFF_BASE_SECONDS")
        for name, url in (
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.otel_exporter_otlp_endpoint),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", self.otel_exporter_otlp_traces_endpoint),
        ):
            if url and not url.startswith(("http://", "https://")):
                raise ValueError(f"{name} must be an http:// or https:// URL")
        if 0 < self.rate_limit_per_second < MIN_SECONDS_SETTING:
            # a wait of 1/rate seconds past any clock (5e-324 once made every 429 a 500)
            raise ValueError(
                f"SCHEDULER_RATE_LIMIT_PER_SECOND must be 0 (off) or at least {MIN_SECONDS_SETTING}"
            )
        if self.rate_limit_per_second > 0 and (self.rate_limit_burst or 2 * self.rate_limit_per_second) < 1:
            raise ValueError(
                "SCHEDULER_RATE_LIMIT_BURST must be at least 1 while the rate limit is on (0 means twice "
                "SCHEDULER_RATE_LIMIT_PER_SECOND): with less, no request could ever pass"
            )
        if self.connect_timeout_seconds > self.request_timeout_seconds:
            raise ValueError(
                "SCHEDULER_CONNECT_TIMEOUT_SECONDS must not exceed SCHEDULER_REQUEST_TIMEOUT_SECONDS"
            )
        return self
