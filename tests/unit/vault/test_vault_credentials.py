"""Typed credentials: secrets never shown, sealed round trips, log masking, nothing in the table."""

from __future__ import annotations

import base64
import io
import logging
import secrets
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from pydantic import SecretStr, ValidationError
from vault_fakes import TABLE

from shared.platform.observability import logger, mask_secrets
from shared.vault import AppleCredential, OAuthCredential, Vault, VaultError, VaultIntegrityError


def canary() -> str:
    """A secret that matches none of the log masker's shapes: only registration can mask it."""
    return "Canary" + secrets.token_hex(12)


def oauth(access: str, refresh: str | None = None) -> OAuthCredential:
    return OAuthCredential(
        access_token=SecretStr(access),
        refresh_token=None if refresh is None else SecretStr(refresh),
        expires_at=datetime(2026, 11, 21, 13, 0, tzinfo=UTC),
        scope="meeting:write:meeting user:read:user",
    )


def test_repr_str_and_json_never_show_secrets() -> None:
    # Given credentials holding canary secrets
    access, refresh, password = canary(), canary(), canary()
    creds = [oauth(access, refresh), AppleCredential(apple_id="mentor@icloud.com", app_specific_password=password)]
    for cred in creds:
        # When they are rendered every usual way
        renderings = [
            repr(cred),
            str(cred),
            f"{cred}",
            cred.model_dump_json(),
            str(cred.model_dump()),
            str(cred.model_dump(mode="json")),
        ]
        # Then no rendering shows a secret
        for text in renderings:
            assert access not in text
            assert refresh not in text
            assert password not in text
    assert "mentor@icloud.com" in repr(creds[1])  # the Apple ID is not a secret


def test_validation_errors_do_not_echo_secrets() -> None:
    # Given a bad credential built with a canary secret / When validated / Then the error hides input
    secret = canary()
    with pytest.raises(ValidationError) as caught:
        OAuthCredential(access_token=secret, expires_at="not a date")
    assert secret not in str(caught.value)


def test_expires_at_is_utc_and_must_be_aware() -> None:
    # Given an expiry in UTC+02:00 / Then it is stored in UTC
    plus2 = OAuthCredential(
        access_token="tok-abcdef", expires_at=datetime(2026, 1, 1, 14, tzinfo=timezone(timedelta(hours=2)))
    )
    assert plus2.expires_at == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert plus2.expires_at.utcoffset() == timedelta(0)
    # And a naive datetime is refused
    with pytest.raises(ValidationError):
        OAuthCredential(access_token="tok-abcdef", expires_at=datetime(2026, 1, 1, 12))


@pytest.mark.parametrize("kind", ["oauth", "oauth-no-refresh", "apple"])
def test_sealed_credentials_round_trip_with_their_type(vault: Vault, kind: str) -> None:
    # Given a credential of each kind
    cred: OAuthCredential | AppleCredential
    if kind == "apple":
        cred = AppleCredential(apple_id="m@icloud.com", app_specific_password="abcd-efgh-ijkl-mnop")
    else:
        cred = oauth(canary(), canary() if kind == "oauth" else None)
    # When it is sealed and opened
    blob = vault.seal_credential(cred, mentor_id="m-1", provider="apple" if kind == "apple" else "google")
    opened = vault.open_credential(blob, mentor_id="m-1", provider="apple" if kind == "apple" else "google")
    # Then the same typed credential comes back (secrets included)
    assert type(opened) is type(cred)
    assert opened == cred
    assert opened.secrets() == cred.secrets()


def test_open_credential_of_a_non_credential_fails_closed(vault: Vault) -> None:
    # Given a sealed blob that is not credential JSON (secret inside)
    secret = canary()
    blob = vault.seal(f'{{"kind":"other","token":"{secret}"}}'.encode(), mentor_id="m", provider="google")
    # When opened as a credential / Then a VaultError that does not echo the content
    with pytest.raises(VaultIntegrityError) as caught:
        vault.open_credential(blob, mentor_id="m", provider="google")
    assert secret not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_opened_secrets_are_registered_for_log_masking(vault: Vault, make_vault: Any) -> None:
    # Given a credential sealed by one process
    access, refresh = canary(), canary()
    blob = vault.seal_credential(oauth(access, refresh), mentor_id="m", provider="zoom")
    assert mask_secrets(f"x {access} y") == "x ***** y"  # sealing registered them too
    # When another process opens it
    make_vault().open_credential(blob, mentor_id="m", provider="zoom")
    # Then any text containing its secrets is masked by the log formatter
    assert mask_secrets(f"refresh with {refresh} now") == "refresh with ***** now"


def test_canary_never_reaches_log_output(vault: Vault, make_vault: Any, caplog: pytest.LogCaptureFixture) -> None:
    # Given a canary token, every logger at DEBUG, and the app logger's real handler writing to a buffer
    access, refresh = canary(), canary()
    caplog.set_level(logging.DEBUG)
    out = io.StringIO()
    handler = cast(logging.StreamHandler[Any], logger.registered_handler)
    old_stream = handler.setStream(out)
    old_level = logger.log_level
    logger.setLevel("DEBUG")
    try:
        # When it is sealed, opened by another process, logged carelessly and mis-opened
        blob = vault.seal_credential(oauth(access, refresh), mentor_id="m-9", provider="google")
        reader = make_vault()
        cred = reader.open_credential(blob, mentor_id="m-9", provider="google")
        assert isinstance(cred, OAuthCredential)
        logger.info("opened credential", extra={"credential": repr(cred), "dump": cred.model_dump_json()})
        logger.debug(f"calling Google with {cred.access_token.get_secret_value()}")  # a careless line
        try:
            vault.open_credential(blob, mentor_id="m-10", provider="google")
        except VaultError:
            logger.exception("could not open")
    finally:
        logger.setLevel(old_level)
        handler.setStream(old_stream)
    text = out.getvalue()
    # Then the log lines were written, with the secrets masked
    assert "calling Google with *****" in text
    assert "opened credential" in text
    assert "could not open" in text
    assert access not in text
    assert refresh not in text
    # And no other log record (the vault's, botocore's at DEBUG, moto's) holds them or a branch key
    branch_keys = {vault.keyring.current().key, reader.keyring.current().key}
    needles = [access, refresh] + [f(k) for k in branch_keys for f in (lambda k: base64.b64encode(k).decode(), repr)]
    records = [r for r in caplog.records if "calling Google" not in r.getMessage()]
    assert any(r.name.startswith("botocore") and r.levelno == logging.DEBUG for r in records)  # DEBUG was on
    for record in records:
        rendered = record.getMessage() + repr(record.__dict__)
        for needle in needles:
            assert needle not in rendered, record.name


def test_canary_never_reaches_the_stored_item(vault: Vault, ddb: Any) -> None:
    # Given a canary credential sealed and stored in the mentor's connection item
    access, refresh = canary(), canary()
    blob = vault.seal_credential(oauth(access, refresh), mentor_id="m-3", provider="google")
    ddb.put_item(
        TableName=TABLE,
        Item={
            "PK": {"S": "MENTOR#m-3"},
            "SK": {"S": "CONN#google"},
            "status": {"S": "connected"},
            "credential": {"B": blob},
        },
    )
    # When the whole table is read back raw
    items = ddb.scan(TableName=TABLE, ConsistentRead=True)["Items"]
    # Then neither secret, nor the credential's JSON field names, appear anywhere in any attribute
    assert len(items) == 2  # the connection and the vault's branch item
    raw = repr(items).encode() + b"".join(bytes(v["B"]) for i in items for v in i.values() if "B" in v)
    for needle in (access.encode(), refresh.encode(), b"access_token", b"refresh_token"):
        assert needle not in raw
    # And the stored blob opens back
    stored = bytes(next(i for i in items if i["PK"]["S"] == "MENTOR#m-3")["credential"]["B"])
    opened = vault.open_credential(stored, mentor_id="m-3", provider="google")
    assert isinstance(opened, OAuthCredential)
    assert opened.access_token.get_secret_value() == access
