"""What may be stored, written down once: every entry (POST /timer, POST /timers/batch,
PATCH /timer/{id}, the CLI import, API-key names) checks its input with these pure functions, so
nothing reaches PostgreSQL that it cannot store, or that the dispatcher could not send.

- times: on or after 1970-01-01T00:00:00Z (asyncpg turns year 1 into `-infinity`); the upper
  bound (now + the horizon) depends on the settings and is checked by the service;
- text: no NUL (PostgreSQL text cannot hold it), no lone surrogate (not encodable as UTF-8);
- JSON: the same for every string and key, and no NaN / Infinity (JSON has no such numbers);
- URLs: exactly what the webhook client (aiohttp) can send: parsed by yarl as aiohttp does, an
  all-digit host must be a canonical dotted quad (aiohttp refuses `127.1`, `127..0.1`), an IPv6
  literal must be one, and any other host must pass the `idna` codec that `getaddrinfo` applies.

Each check returns the reason in words (the caller names the field), or None when storable; the
common ASCII case costs no Python loop over the characters.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import unicodedata
from datetime import UTC, datetime

# aiohttp's own tests of a URL host, so "sendable" means what the sending client means.
from aiohttp.helpers import is_canonical_ipv4_address, is_ip_address
from pydantic import JsonValue
from yarl import URL

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
NUL = "contains a NUL character"
LONE_SURROGATE = "contains a lone surrogate (not valid Unicode)"
NOT_FINITE = "contains NaN or Infinity (not JSON numbers)"


def time_problem(value: datetime) -> str | None:
    """Why an aware time cannot be stored, regardless of settings: before 1970 in UTC."""
    if value < EARLIEST:
        return "is before 1970-01-01T00:00:00Z"
    return None


def text_problem(value: str) -> str | None:
    """Why PostgreSQL cannot store this string as text: a NUL or a lone surrogate."""
    if "\x00" in value:
        return NUL
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return LONE_SURROGATE
    return None


def json_text(value: JsonValue) -> str:
    """The compact JSON text of `value` that jsonb stores; ValueError with the reason if it cannot."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except ValueError:
        raise ValueError(NOT_FINITE) from None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(LONE_SURROGATE) from None
    # json.dumps writes NUL as \u0000; a literal backslash-u-0000 in a string is rarer still.
    if "\\u0000" in text and _has_nul(value):
        raise ValueError(NUL)
    return text


def json_problem(value: JsonValue) -> str | None:
    try:
        json_text(value)
    except ValueError as exc:
        return str(exc)
    return None


def _has_nul(value: JsonValue) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    if isinstance(value, dict):
        return any("\x00" in key or _has_nul(item) for key, item in value.items())
    return False


def url_problem(value: str) -> str | None:
    """Why the webhook client could never send to this URL, or None. Destinations (SSRF) are
    the address policy's business, not this one."""
    if value.isascii():  # the usual case, checked without a Python loop over the characters
        unfit = " " in value or not value.isprintable()
    else:
        unfit = text_problem(value) is not None or any(
            ch.isspace() or unicodedata.category(ch) == "Cc" for ch in value
        )
    if unfit:
        return "must not contain spaces or control characters"
    try:
        url = URL(value)  # what aiohttp does with the string it is given
        port = url.explicit_port
    except (ValueError, TypeError) as exc:
        return f"is not a valid URL ({exc})"
    if url.scheme not in ("http", "https"):
        return "must be an absolute http:// or https:// URL"
    host = url.raw_host
    if not host:
        return "must include a host"
    if port == 0:
        return "port 0 is not a valid destination"
    return host_problem(host)


@functools.lru_cache(maxsize=4096)  # webhooks repeat their hosts; the idna codec is slow
def host_problem(host: str) -> str | None:
    """Why aiohttp (or the resolver it calls) refuses a host as yarl parsed it (`raw_host`)."""
    if is_ip_address(host):
        if ":" in host:
            try:
                ipaddress.IPv6Address(host.partition("%")[0])
            except ValueError:
                return f"host {host[:100]!r} is not a valid IPv6 address"
        elif not is_canonical_ipv4_address(host):
            return f"host {host[:100]!r} is not a canonical IPv4 address (four numbers 0-255)"
        return None
    try:
        host.encode("idna")  # what socket.getaddrinfo does with a str host
    except UnicodeError:
        return f"host {host[:100]!r} is not a valid DNS name (an empty or over-long label)"
    return None


def printable(value: str) -> str:
    """`value` safe to put in a UTF-8 answer: lone surrogates written as escapes."""
    if value.isascii():
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8")
