"""What a destination key is: given on create (1-200 printable characters), or by default the
origin of the timer's URL (`scheme://host:port`, the port always written out)."""

from __future__ import annotations

import functools
import re

from yarl import URL

MAX_KEY_LENGTH = 200
# A default key may be longer (a host name has up to 253 characters): the API looks keys up to this.
MAX_LOOKUP_LENGTH = 300


def key_problem(key: str, *, limit: int = MAX_KEY_LENGTH) -> str | None:
    """Why `key` cannot name a destination, or None."""
    if not 1 <= len(key) <= limit:
        return f"must be 1 to {limit} characters"
    if not key.isprintable() or key != key.strip():
        return "must be printable, without leading or trailing spaces"
    return None


def default_key(url: str) -> str:
    """The origin of an http(s) URL: `scheme://host:port` (the text before the path, lower-cased,
    for a URL yarl cannot parse: the API never accepts one)."""
    scheme, _, rest = url.partition("://")
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    try:
        return _origin(scheme.lower(), authority)
    except (ValueError, TypeError):
        return f"{scheme}://{authority}".lower()[:MAX_LOOKUP_LENGTH]


@functools.lru_cache(maxsize=4096)  # timers repeat their hosts
def _origin(scheme: str, authority: str) -> str:
    parsed = URL(f"{scheme}://{authority}")  # the host as aiohttp sends it: lower case, IDNA
    host = parsed.raw_host or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"{parsed.scheme}://{host}:{parsed.port}"


_ORIGIN = re.compile(r"(https?)://([^/?#@\s]+):([0-9]{1,5})")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def rollup_hosts(key: str) -> tuple[str, ...]:
    """The hosts whose delivery rollups are this destination's: for a key that is a URL's origin,
    its `host:port` and, on the scheme's default port, its bare `host` (the rollups hold the
    authority as the URLs write it); none for any other key (a key given on create may span
    hosts and share them with other keys)."""
    match = _ORIGIN.fullmatch(key.lower())
    if match is None:
        return ()
    scheme, host, port = match.group(1), match.group(2), int(match.group(3))
    if port == _DEFAULT_PORTS[scheme]:
        return (f"{host}:{port}", host)
    return (f"{host}:{port}",)
