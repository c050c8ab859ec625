"""Canary tokens: after sealing, storing and reading credentials, no plaintext is anywhere it must not be."""

from __future__ import annotations

import base64
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from shared.platform import aws
from shared.platform.observability import logger
from shared.store import Connection, Provider, Store
from shared.vault import AppleCredential, OAuthCredential, Vault
from shared.vault.branch_store import DynamoBranchStore
from shared.vault.keys import KeyCache


@pytest.fixture
def env(aws_env: None, store: Store) -> tuple[Store, Vault, list[bytes]]:
    """The project's table and KMS key (moto), a vault on them, and every data key KMS hands out."""
    ddb, kms = aws.client("dynamodb"), aws.client("kms")
    data_keys: list[bytes] = []

    def remember_plaintext_keys(parsed: dict[str, object], **_: object) -> None:
        if isinstance(parsed.get("Plaintext"), bytes):
            data_keys.append(parsed["Plaintext"])  # type: ignore[arg-type]

    kms.meta.events.register("after-call.kms", lambda http_response, parsed, **kw: remember_plaintext_keys(parsed))
    vault = Vault(
        kms=kms,
        store=DynamoBranchStore(ddb, store.table.name),
        kms_key_id="alias/mentor-connections",
        cache=KeyCache(),
    )
    return store, vault, data_keys


def _forms(secret: str | bytes) -> list[str]:
    raw = secret.encode() if isinstance(secret, str) else secret
    forms = [base64.b64encode(raw).decode(), raw.hex()]
    if isinstance(secret, str):
        forms.append(secret)
    return forms


def test_canaries_appear_in_no_log_line_and_no_attribute(
    captured_logs: io.StringIO, env: tuple[Store, Vault, list[bytes]]
) -> None:
    store, vault, data_keys = env
    # Given canary secrets shaped like the real ones and an opaque one
    canaries = {
        "google_access": f"ya29.CANARY{uuid.uuid4().hex}",
        "google_refresh": f"1//CANARY{uuid.uuid4().hex}",
        "zoom_access": f"eyJhbGciOiJIUzUxMiJ9.CANARY{uuid.uuid4().hex}.sig",
        "apple_password": "cana-ryxx-pass-word",
        "opaque": f"CANARY-{uuid.uuid4().hex}",
    }
    google = OAuthCredential(
        access_token=SecretStr(canaries["google_access"]),
        refresh_token=SecretStr(canaries["google_refresh"]),
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    zoom = OAuthCredential(
        access_token=SecretStr(canaries["zoom_access"]),
        refresh_token=SecretStr(canaries["opaque"]),
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    apple = AppleCredential(apple_id="ada@icloud.com", app_specific_password=SecretStr(canaries["apple_password"]))
    # When they are sealed, stored, read back and opened — with the code logging what it does
    for provider, cred in ((Provider.GOOGLE, google), (Provider.ZOOM, zoom), (Provider.APPLE, apple)):
        blob = vault.seal_credential(cred, mentor_id="m1", provider=provider.value)
        store.save_connection(Connection(mentor_id="m1", provider=provider, credential=blob), expected_version=None)
        loaded = store.get_connection("m1", provider)
        assert loaded is not None
        assert loaded.credential is not None
        opened = vault.open_credential(loaded.credential, mentor_id="m1", provider=provider.value)
        assert opened == cred
        logger.info("opened credential", extra={"credential": opened, "dump": opened.model_dump()})
        logger.debug(f"credential repr {opened!r} str {opened}")
    logger.info("raw values by mistake", extra={"leak": canaries["opaque"], "pw": canaries["apple_password"]})
    # Then no captured log line holds a canary (nor the unwrapped branch key)
    logs = captured_logs.getvalue()
    assert "opened credential" in logs
    assert "botocore" in logs or "Response body" in logs or "Event before-call" in logs, "DEBUG capture is not live"
    for name, value in canaries.items():
        for form in _forms(value):
            assert form not in logs, f"{name} leaked into logs"
    assert data_keys, "the test must have seen the KMS plaintext data key"
    for key in data_keys:
        for form in _forms(key):
            assert form not in logs, "an unwrapped branch key leaked into logs"
    # And no stored attribute of any item holds one, in any encoding
    scanned = store.table.client.scan(TableName=store.table.name)["Items"]
    dump = repr(scanned)
    for name, value in canaries.items():
        for form in _forms(value):
            assert form not in dump, f"{name} stored in the clear"
    for item in scanned:
        for attr in item.values():
            if "B" in attr:
                for value in canaries.values():
                    assert value.encode() not in attr["B"]
