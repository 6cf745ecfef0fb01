"""`verify_webhook`: what a receiver calls on each delivery (Standard Webhooks, scheme `v1`).

The service sends `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256>`
(one per active secret, space-separated), signed over `{webhook-id}.{webhook-timestamp}.{body}`
with each `whsec_` secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from datetime import datetime

from pydantic import JsonValue

from task_scheduler_client._errors import WebhookVerificationError

SECRET_PREFIX = "whsec_"  # noqa: S105  # the format marker, not a secret
DEFAULT_TOLERANCE_SECONDS = 300


def verify_webhook(
    secrets: str | Sequence[str],
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: datetime | float | None = None,
) -> JsonValue:
    """Checks a delivery and returns its body parsed as JSON (the text itself if it is not JSON).

    `secrets`: your `whsec_...` secret, or several while you rotate (a delivery signed with any one
    of them passes). `headers`: the request's headers (any case). `body`: the raw body, exactly as
    received: verify before parsing. `tolerance_seconds`: how far `webhook-timestamp` may be from
    `now` (default: the current time), against replays.

    Raises WebhookVerificationError (a ValueError) with the reason when the delivery is not
    authentic: answer 400 and ignore it. Raises a plain ValueError when a secret is malformed.
    """
    keys = [_decode_secret(secret) for secret in ([secrets] if isinstance(secrets, str) else secrets)]
    if not keys:
        raise ValueError("verify_webhook needs at least one secret")
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id, timestamp, signatures = (
        _header(lowered, name) for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    )
    # Whatever the sender put in them (anyone can post to a receiver): text a framework decoded
    # may hold lone surrogates, which then match no signature instead of raising.
    raw = body.encode(errors="surrogatepass") if isinstance(body, str) else body
    _check_timestamp(timestamp, tolerance_seconds=tolerance_seconds, now=now)
    signed = f"{msg_id}.{timestamp}.".encode(errors="surrogatepass") + raw
    offered = [
        candidate.removeprefix("v1,").encode(errors="surrogatepass")
        for candidate in signatures.split()
        if candidate.startswith("v1,")
    ]
    if not offered:
        raise WebhookVerificationError("webhook-signature holds no v1 signature")
    for key in keys:
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
        # compare_digest with every candidate: the time taken says nothing about which one is close
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return _parsed(raw)
    raise WebhookVerificationError(f"no signature matches ({len(keys)} secret(s) tried)")


def _decode_secret(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"a webhook secret is not {SECRET_PREFIX!r} + base64") from None


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name, "").strip()
    if not value:
        raise WebhookVerificationError(f"missing {name} header")
    return value


def _check_timestamp(value: str, *, tolerance_seconds: float, now: datetime | float | None) -> None:
    try:
        sent = int(value) if value.isascii() else None
    except ValueError:
        sent = None
    # Past 2**53 no float holds it (and compared with the current time, an int past 1e308 raised
    # OverflowError out of verify_webhook: a sender's 400-digit timestamp made the receiver fail).
    if sent is None or abs(sent) > 2**53:
        raise WebhookVerificationError("webhook-timestamp is not a Unix time in seconds")
    current = time.time() if now is None else now.timestamp() if isinstance(now, datetime) else now
    if sent < current - tolerance_seconds:
        raise WebhookVerificationError(
            f"webhook-timestamp is {current - sent:.0f} s old (tolerance {tolerance_seconds:g} s)"
        )
    if sent > current + tolerance_seconds:
        raise WebhookVerificationError(
            f"webhook-timestamp is {sent - current:.0f} s in the future (tolerance {tolerance_seconds:g} s)"
        )


def _parsed(raw: bytes) -> JsonValue:
    text = raw.decode("utf-8", errors="replace")
    try:
        parsed: JsonValue = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's parser goes
        return text
    return parsed
