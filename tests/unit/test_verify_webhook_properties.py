"""`verify_webhook` on whatever a sender puts in a request (anyone can post to a receiver): it
returns the body of an authentic delivery, and refuses everything else with
WebhookVerificationError, the one error a receiver's handler expects (answer 400), never another
exception (a 500). Found: a 400-digit `webhook-timestamp` raised OverflowError, a lone surrogate
in a header UnicodeEncodeError, and an authentic body nested deeper than Python's JSON parser goes
RecursionError."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from task_scheduler_client import WebhookVerificationError, verify_webhook

KEY = b"k" * 24
SECRET = "whsec_" + base64.b64encode(KEY).decode()
NOW = 1_800_000_000

any_text = st.text(max_size=40)  # lone surrogates included: text a framework decoded may hold them
timestamps = st.one_of(
    st.integers(-(10**400), 10**400).map(str),
    st.integers(NOW - 1000, NOW + 1000).map(str),
    st.sampled_from(["", " ", "1e9", "0x10", "١٢٣", "9" * 5000, f" {NOW} ", f"+{NOW}", "nan"]),
    any_text,
)
signatures = st.one_of(
    any_text,
    st.lists(st.one_of(any_text, any_text.map(lambda t: f"v1,{t}")), max_size=5).map(" ".join),
)


def _signature(msg_id: str, timestamp: str, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode(errors="surrogatepass") + body
    return "v1," + base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    msg_id=any_text,
    timestamp=timestamps,
    signature=signatures,
    body=st.binary(max_size=64) | any_text,
    extra=st.dictionaries(any_text, any_text, max_size=3),
)
def test_anything_not_authentic_is_refused_with_the_one_error(
    msg_id: str, timestamp: str, signature: str, body: bytes | str, extra: dict[str, str]
) -> None:
    headers = {**extra, "Webhook-Id": msg_id, "webhook-timestamp": timestamp, "WEBHOOK-SIGNATURE": signature}
    try:
        verify_webhook(SECRET, headers, body, now=float(NOW))
    except WebhookVerificationError:
        return
    # It passed: then it was authentic (a random signature never is).
    raw = body.encode(errors="surrogatepass") if isinstance(body, str) else body
    assert _signature(msg_id.strip(), timestamp.strip(), raw) in signature.split()


@settings(max_examples=100, deadline=None, derandomize=True)
@given(msg_id=any_text.filter(str.strip), body=st.binary(max_size=256), skew=st.integers(-300, 300))
def test_an_authentic_delivery_passes_whatever_it_carries(msg_id: str, body: bytes, skew: int) -> None:
    msg_id = msg_id.strip()
    timestamp = str(NOW + skew)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": _signature(msg_id, timestamp, body),
    }
    verify_webhook(SECRET, headers, body, now=float(NOW))


def test_an_authentic_body_nested_past_the_json_parser_is_returned_as_text() -> None:
    """Regression: json.loads raised RecursionError out of verify_webhook (a timer's body is the
    creator's JSON, signed by the service: authentic, and still hostile to the receiver)."""
    body = b"[" * 100_000 + b"]" * 100_000
    timestamp = str(int(time.time()))
    headers = {
        "webhook-id": "m",
        "webhook-timestamp": timestamp,
        "webhook-signature": _signature("m", timestamp, body),
    }
    assert verify_webhook(SECRET, headers, body) == body.decode()
