"""Standard Webhooks signing: the published test vector, secret decoding, rotation, and
verification by the reference `standardwebhooks` library (the receivers' point of view)."""

from __future__ import annotations

import base64
import json
import time
import traceback
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from task_scheduler.delivery.signing import (
    SECRET_PREFIX,
    InvalidSecret,
    WebhookSigner,
    decode_secret,
    generate_secret,
)

# The known answer of the reference library's own test
# (standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py::test_sign_function).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

BODY = json.dumps({"timer_id": 7, "due_at": "2024-01-01T00:00:00+00:00", "attempt": 1}).encode()
MSG_ID = "msg_0123456789abcdef0123456789abcdef"


def _secret_of(key: bytes) -> str:
    return SECRET_PREFIX + base64.b64encode(key).decode()


def test_signature_matches_the_standard_webhooks_test_vector() -> None:
    signer = WebhookSigner([VECTOR_SECRET])
    signature = signer.signature(msg_id=VECTOR_MSG_ID, timestamp=VECTOR_TIMESTAMP, body=VECTOR_BODY)
    assert signature == VECTOR_SIGNATURE


def test_signature_matches_the_reference_library_signer() -> None:
    reference = Webhook(VECTOR_SECRET).sign(
        msg_id=VECTOR_MSG_ID,
        timestamp=datetime.fromtimestamp(VECTOR_TIMESTAMP, UTC),
        data=VECTOR_BODY.decode(),
    )
    assert reference == VECTOR_SIGNATURE


def test_vector_secret_decodes_to_its_24_key_bytes() -> None:
    assert decode_secret(VECTOR_SECRET) == base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")


def test_two_secrets_give_two_space_separated_signatures_in_order() -> None:
    first, second = generate_secret(), generate_secret()

    def sign(*secrets: str) -> str:
        return WebhookSigner(secrets).signature(msg_id=MSG_ID, timestamp=1_700_000_000, body=BODY)

    assert sign(first) != sign(second)
    assert sign(first, second) == f"{sign(first)} {sign(second)}"
    assert sign(second, first) == f"{sign(second)} {sign(first)}"


def test_each_part_of_the_signed_content_changes_the_signature() -> None:
    signer = WebhookSigner([VECTOR_SECRET])
    signatures = {
        signer.signature(msg_id=VECTOR_MSG_ID, timestamp=VECTOR_TIMESTAMP, body=VECTOR_BODY),
        signer.signature(msg_id="msg_other", timestamp=VECTOR_TIMESTAMP, body=VECTOR_BODY),
        signer.signature(msg_id=VECTOR_MSG_ID, timestamp=VECTOR_TIMESTAMP + 1, body=VECTOR_BODY),
        signer.signature(msg_id=VECTOR_MSG_ID, timestamp=VECTOR_TIMESTAMP, body=b"{}"),
    }
    assert len(signatures) == 4


def test_a_dot_in_the_message_id_is_refused() -> None:
    # Else id "msg.1" at 2 would sign the same bytes as id "msg" at 1 with body b"2." + body.
    with pytest.raises(ValueError, match="must not contain"):
        WebhookSigner([VECTOR_SECRET]).signature(msg_id="msg.1", timestamp=1, body=b"")


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with 'whsec_'"),
        ("WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with 'whsec_'"),
        ("", "must start with 'whsec_'"),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS*", "not valid padded base64"),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", "not valid padded base64"),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwé", "not valid padded base64"),
        # 32 random bytes in base64 without its final '=' padding
        (_secret_of(bytes(range(32))).rstrip("="), "not valid padded base64"),
        ("whsec_", "decodes to 0 bytes"),
        (_secret_of(bytes(range(23))), "decodes to 23 bytes; it must be 24 to 64 bytes"),
        (_secret_of(bytes(65)), "decodes to 65 bytes; it must be 24 to 64 bytes"),
    ],
)
def test_invalid_secrets_are_refused_without_echoing_them(secret: str, reason: str) -> None:
    with pytest.raises(InvalidSecret, match=reason) as caught:
        decode_secret(secret)

    shown = "".join(traceback.format_exception(caught.value))
    encoded = secret.removeprefix(SECRET_PREFIX).strip()
    if encoded:
        assert encoded not in shown
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("length", [24, 32, 64])
def test_keys_of_24_to_64_bytes_are_accepted(length: int) -> None:
    key = bytes(range(length))
    assert decode_secret(_secret_of(key)) == key


def test_signer_names_the_bad_secret_by_position_not_by_value() -> None:
    bad = "whsec_c2hvcnQ="  # base64 of b"short"
    with pytest.raises(InvalidSecret, match=r"^secret 2 of 2: webhook secret decodes to 5 bytes"):
        WebhookSigner([VECTOR_SECRET, bad])


def test_signer_refuses_one_string_in_place_of_a_list() -> None:
    with pytest.raises(TypeError, match="not one string"):
        WebhookSigner(VECTOR_SECRET)


def test_signer_repr_does_not_show_keys() -> None:
    assert repr(WebhookSigner([VECTOR_SECRET, VECTOR_SECRET])) == "WebhookSigner(<2 secrets>)"


def test_generated_secret_round_trips_to_32_fresh_bytes() -> None:
    secret = generate_secret()
    assert secret.startswith(SECRET_PREFIX)
    assert len(decode_secret(secret)) == 32
    assert generate_secret() != secret


def test_headers_with_secrets_carry_id_timestamp_and_signature() -> None:
    signer = WebhookSigner([VECTOR_SECRET])
    assert signer.enabled
    headers = signer.headers(msg_id=VECTOR_MSG_ID, timestamp=VECTOR_TIMESTAMP, body=VECTOR_BODY)
    assert headers == {
        "webhook-id": VECTOR_MSG_ID,
        "webhook-timestamp": "1614265330",
        "webhook-signature": VECTOR_SIGNATURE,
    }


def test_without_secrets_headers_are_unsigned_and_signature_refuses() -> None:
    signer = WebhookSigner([])
    assert not signer.enabled
    headers = signer.headers(msg_id=MSG_ID, timestamp=1_700_000_000, body=BODY)
    assert headers == {"webhook-id": MSG_ID, "webhook-timestamp": "1700000000"}
    with pytest.raises(RuntimeError, match="no secrets"):
        signer.signature(msg_id=MSG_ID, timestamp=1_700_000_000, body=BODY)


# What a receiver does: verify with the reference library, which also checks the timestamp is
# within 5 minutes of now, so these sign with the current time.


def test_reference_library_verifies_a_signed_request() -> None:
    secret = generate_secret()
    headers = WebhookSigner([secret]).headers(msg_id=MSG_ID, timestamp=int(time.time()), body=BODY)
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)


def test_each_of_two_rotated_secrets_verifies_alone() -> None:
    old, new = generate_secret(), generate_secret()
    headers = WebhookSigner([old, new]).headers(msg_id=MSG_ID, timestamp=int(time.time()), body=BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(BODY, headers) == json.loads(BODY)
    assert Webhook(new).verify(BODY, headers) == json.loads(BODY)


def test_reference_library_rejects_a_tampered_body() -> None:
    secret = generate_secret()
    headers = WebhookSigner([secret]).headers(msg_id=MSG_ID, timestamp=int(time.time()), body=BODY)
    tampered = BODY.replace(b'"attempt": 1', b'"attempt": 2')
    assert tampered != BODY
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(secret).verify(tampered, headers)


def test_reference_library_rejects_a_wrong_secret() -> None:
    headers = WebhookSigner([generate_secret()]).headers(msg_id=MSG_ID, timestamp=int(time.time()), body=BODY)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(generate_secret()).verify(BODY, headers)


def test_reference_library_rejects_a_changed_message_id() -> None:
    secret = generate_secret()
    headers = WebhookSigner([secret]).headers(msg_id=MSG_ID, timestamp=int(time.time()), body=BODY)
    headers["webhook-id"] = "msg_replayed"
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(secret).verify(BODY, headers)


@pytest.mark.parametrize(("age_seconds", "reason"), [(10 * 60, "too old"), (-10 * 60, "too new")])
def test_reference_library_rejects_a_stale_or_future_timestamp(age_seconds: int, reason: str) -> None:
    secret = generate_secret()
    headers = WebhookSigner([secret]).headers(
        msg_id=MSG_ID, timestamp=int(time.time()) - age_seconds, body=BODY
    )
    with pytest.raises(WebhookVerificationError, match=reason):
        Webhook(secret).verify(BODY, headers)
