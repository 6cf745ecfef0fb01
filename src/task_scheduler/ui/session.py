"""Dashboard sessions: a signed, expiring cookie naming an API key, and CSRF tokens tied to it.

The cookie is `<payload>.<mac>`, payload = base64url JSON {"k": key id or null, "n": nonce,
"e": expiry (unix seconds)}, mac = HMAC-SHA256 over the payload. The MAC key is derived from

    SCHEDULER_UI_SESSION_SECRET (empty if unset)  and  the key's stored SHA-256 hash

so every instance and worker on one database verifies every other's cookies with no shared
configuration, the raw API key never sits in the browser, and a revoked key fails its lookup on
the next request (the same cached lookup the API does). Setting the secret adds a value that is
not in the database, so someone who can only read the database cannot mint sessions.

A cookie with no key ("k": null) grants nothing by itself: it only carries the nonce for the
CSRF token of a loopback browser served as the local admin in protected mode.

CSRF token = HMAC(MAC key, "csrf|" + nonce): bound to this session, checked on every POST.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

COOKIE_NAME = "tsui_session"
SESSION_SECONDS = 8 * 3600


@dataclass(frozen=True, slots=True)
class SessionCookie:
    key_id: str | None
    nonce: str
    expires_at: int


def mac_key(server_secret: bytes, key_hash: bytes) -> bytes:
    return hmac.new(server_secret, b"ui-session|" + key_hash, hashlib.sha256).digest()


def _mac(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def new_session(key_id: str | None, *, now: float | None = None) -> SessionCookie:
    issued = time.time() if now is None else now
    return SessionCookie(
        key_id=key_id, nonce=secrets.token_urlsafe(18), expires_at=int(issued) + SESSION_SECONDS
    )


def encode(session: SessionCookie, key: bytes) -> str:
    raw = json.dumps(
        {"k": session.key_id, "n": session.nonce, "e": session.expires_at}, separators=(",", ":")
    )
    payload = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    return f"{payload}.{_mac(key, payload)}"


def decode_unverified(value: str) -> tuple[SessionCookie, str, str] | None:
    """(session, payload, mac) from a cookie, before its MAC is checked; None if malformed or
    expired. The caller derives the MAC key from the key id and calls `verify`."""
    payload, dot, mac = value.partition(".")
    if not dot or len(value) > 1000:
        return None
    try:
        fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        key_id, nonce, expires_at = fields["k"], fields["n"], fields["e"]
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        return None
    if not (key_id is None or isinstance(key_id, str)) or not isinstance(nonce, str):
        return None
    if not isinstance(expires_at, int) or expires_at <= time.time():
        return None
    return SessionCookie(key_id=key_id, nonce=nonce, expires_at=expires_at), payload, mac


def verify(payload: str, mac: str, key: bytes) -> bool:
    return hmac.compare_digest(_mac(key, payload), mac)


def csrf_token(session: SessionCookie, key: bytes) -> str:
    return _mac(key, "csrf|" + session.nonce)


def csrf_ok(session: SessionCookie, key: bytes, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(csrf_token(session, key), presented)
