"""Standard Webhooks signatures (https://www.standardwebhooks.com/, symmetric scheme `v1`).

A secret is `whsec_` + base64 of 24 to 64 random bytes. The signed content is
`{webhook-id}.{webhook-timestamp}.{body}`; the `webhook-signature` header holds one
`v1,<base64 HMAC-SHA256>` per active secret, space-separated, so a receiver can rotate its
secret without downtime: it accepts the request when any one of the signatures matches.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from secrets import token_bytes

# The format marker of a secret, not a secret itself.
SECRET_PREFIX = "whsec_"  # noqa: S105
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
_GENERATED_SECRET_BYTES = 32
# A tenant's active secrets, at most (POST /tenant/secrets answers 409 past it), and the most that
# sign one webhook (the newest): each adds ~48 bytes to the webhook-signature header, and
# receivers refuse header lines over 8 KiB (aiohttp, nginx), so an unbounded count made every
# webhook of the tenant undeliverable (found by test_poison_requests adding secrets).
MAX_ACTIVE_SECRETS = 10


class InvalidSecret(ValueError):
    """A webhook secret is not `whsec_` + base64 of 24 to 64 bytes; the message never holds it."""


def decode_secret(secret: str) -> bytes:
    """'whsec_' + base64 → key bytes; raises InvalidSecret without echoing the secret."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret(f"webhook secret must start with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text; neither may carry the secret along
        raise InvalidSecret(f"webhook secret after {SECRET_PREFIX!r} is not valid padded base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise InvalidSecret(
            f"webhook secret decodes to {len(key)} bytes;"
            f" it must be {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes"
        )
    return key


def generate_secret() -> str:
    """A new random secret: 'whsec_' + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(_GENERATED_SECRET_BYTES)).decode("ascii")


class WebhookSigner:
    """Signs payloads with every active secret so receivers can rotate secrets without downtime."""

    __slots__ = ("_keys",)

    def __init__(self, secrets: Sequence[str]) -> None:
        if isinstance(secrets, str):
            raise TypeError("WebhookSigner takes a sequence of secrets, not one string")
        keys: list[bytes] = []
        for position, secret in enumerate(secrets, start=1):
            try:
                keys.append(decode_secret(secret))
            except InvalidSecret as exc:
                raise InvalidSecret(f"secret {position} of {len(secrets)}: {exc}") from None
        self._keys = tuple(keys)  # decoded once: signing runs per delivery

    def __repr__(self) -> str:
        return f"WebhookSigner(<{len(self._keys)} secrets>)"

    @property
    def enabled(self) -> bool:
        """False when there are no secrets: requests then go out unsigned."""
        return bool(self._keys)

    def signature(self, *, msg_id: str, timestamp: int, body: bytes) -> str:
        """The `webhook-signature` value: 'v1,<base64 HMAC-SHA256>' per secret, in order."""
        if not self._keys:
            raise RuntimeError("WebhookSigner has no secrets; check .enabled before signing")
        if "." in msg_id:
            # The id is followed by '.' in the signed content; a '.' inside it would be ambiguous.
            raise ValueError("webhook-id must not contain '.'")
        signed_content = f"{msg_id}.{timestamp}.".encode() + body
        return " ".join(_v1_signature(key, signed_content) for key in self._keys)

    def headers(self, *, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """The Standard Webhooks headers; `webhook-signature` only when there are secrets."""
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
        if self._keys:
            headers["webhook-signature"] = self.signature(msg_id=msg_id, timestamp=timestamp, body=body)
        return headers


def _v1_signature(key: bytes, signed_content: bytes) -> str:
    digest = hmac.new(key, signed_content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")
