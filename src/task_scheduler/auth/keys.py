"""API key format: `tsk_<key_id>_<secret>`; the key_id is public, the whole key is only hashed."""

from __future__ import annotations

import hashlib
import re
import secrets

KEY_PREFIX = "tsk_"
_FORMAT = re.compile(r"^tsk_([0-9a-f]{12})_([A-Za-z0-9_-]{43,})$")
MIN_BOOTSTRAP_KEY_LENGTH = 32


def generate_key() -> tuple[str, str]:
    """A new key and its key_id: 6 random bytes of id, 32 random bytes of secret."""
    key_id = secrets.token_hex(6)
    return f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}", key_id


def key_id_of(raw_key: str) -> str:
    """The key_id of a key: embedded in our format, derived from the hash for operator-made keys."""
    match = _FORMAT.match(raw_key)
    return match.group(1) if match else hash_key(raw_key).hex()[:12]


def hash_key(raw_key: str) -> bytes:
    """SHA-256 is enough for keys with 256 bits of entropy (no password stretching needed)."""
    return hashlib.sha256(raw_key.encode()).digest()
