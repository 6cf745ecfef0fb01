"""The settings every test service starts from (tuned for fast tests; a test's overrides win)."""

from __future__ import annotations

from typing import Any

TEST_SETTINGS: dict[str, Any] = {
    "backoff_base_seconds": 0.05,
    "backoff_cap_seconds": 0.2,
    "connect_timeout_seconds": 1.0,
    "request_timeout_seconds": 2.0,
    "lease_seconds": 5.0,
    "poll_interval_seconds": 0.2,
    "lookahead_seconds": 1.0,
    "shutdown_grace_seconds": 2.0,
    "db_pool_size": 5,
    "log_format": "console",
    # The test receivers listen on loopback, which webhooks may not reach by default.
    "webhook_allowed_networks": "127.0.0.0/8,::1/128",
}
