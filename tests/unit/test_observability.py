"""The log formatter masks anything secret-shaped, wherever it hides in the line."""

from __future__ import annotations

import io
import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.platform.observability import MASK, MaskingFormatter, mask_secrets, register_secret


@pytest.mark.parametrize(
    "secret",
    [
        "ya29.a0AfH6SMBx3kq9Zz-canary_access",
        "1//0gLx9canaryRefreshToken-_abc",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtMSJ9.c2lnbmF0dXJlLWNhbmFyeQ",
        "whsec_canary1234567890abcdef",
        "sk_live_canary1234567890",
        "abcd-efgh-ijkl-mnop",
    ],
)
def test_known_shapes_are_masked(secret: str) -> None:
    # Given a line that mentions a secret in running text / When masked / Then it is gone
    line = f"refresh failed for mentor m1 using {secret} at step 2"
    masked = mask_secrets(line)
    assert secret not in masked
    assert MASK in masked
    assert "mentor m1" in masked


@pytest.mark.parametrize(
    "line",
    [
        '{"access_token": "opaque-canary-1", "expires_in": 3599}',
        "{'refresh_token': 'opaque-canary-1', 'scope': 'x'}",
        "grant_type=refresh_token&refresh_token=opaque-canary-1&client_id=abc",
        "client_secret=opaque-canary-1",
        "Authorization: Bearer opaque-canary-1",
        '"password": "opaque-canary-1"',
    ],
)
def test_values_of_secret_named_keys_are_masked(line: str) -> None:
    assert "opaque-canary-1" not in mask_secrets(line)


def test_registered_secrets_are_masked_even_without_a_known_shape() -> None:
    # Given a vault-opened secret with no recognisable shape
    register_secret('Zq8-opaque\\canary"value')
    # When it appears raw or JSON-escaped / Then both forms are masked
    assert "opaque" not in mask_secrets('token was Zq8-opaque\\canary"value')
    assert "opaque" not in mask_secrets(json.dumps({"note": 'Zq8-opaque\\canary"value'}))


def test_ordinary_ids_survive() -> None:
    line = "mentor=m-123 provider=google booking=bk_01HZX status=connected calendar=primary"
    assert mask_secrets(line) == line


@given(st.from_regex(r"[A-Za-z0-9_-]{12,40}", fullmatch=True))
def test_any_registered_value_never_survives(value: str) -> None:
    register_secret(value)
    assert value not in mask_secrets(f"x {value} y {json.dumps({'v': value})}")


def test_powertools_logger_output_is_masked() -> None:
    # Given a Powertools logger writing JSON through the masking formatter
    from aws_lambda_powertools import Logger

    stream = io.StringIO()
    log = Logger(service="t", stream=stream, logger_formatter=MaskingFormatter())
    # When a secret hides in the message, in extra fields and in an exception
    log.info("got ya29.canary-in-message-123456")
    log.info("token response", extra={"body": {"refresh_token": "opaque-canary-2", "n": 1}})
    try:
        raise RuntimeError("exchange failed: refresh_token=opaque-canary-3")
    except RuntimeError:
        log.exception("boom")
    out = stream.getvalue()
    # Then no line carries a secret and every line is still valid JSON
    for canary in ("ya29.canary-in-message-123456", "opaque-canary-2", "opaque-canary-3"):
        assert canary not in out
    for line in out.strip().splitlines():
        json.loads(line)
    assert logging.getLogger("t") is not None
