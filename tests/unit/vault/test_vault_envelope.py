"""Sealed format: round trips, tampering, truncation, context binding, nonce uniqueness."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.vault import Vault, VaultError, VaultIntegrityError
from shared.vault.envelope import MAGIC, NONCE_BYTES, SALT_BYTES, TAG_BYTES, encode_header, parse

PLAINTEXT = b'{"access_token":"ya29.a0-canary-token","refresh_token":"1//refresh-canary"}'
FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)

# Context strings: any text (surrogates included), non-empty.
contexts = st.text(min_size=1, max_size=40)


def field_spans(blob: bytes) -> dict[str, tuple[int, int]]:
    """Byte ranges [start, end) of each part of a v1 blob."""
    header, body = parse(blob)
    spans: dict[str, tuple[int, int]] = {"magic": (0, len(MAGIC)), "version": (len(MAGIC), len(MAGIC) + 1)}
    pos = len(MAGIC) + 1
    for name, value in (
        ("key_arn", header.key_arn.encode()),
        ("branch_id", header.branch_id.encode()),
        ("wrapped_key", header.wrapped_key),
        ("salt", header.salt),
        ("nonce", header.nonce),
    ):
        spans[f"{name}_len"] = (pos, pos + 2)
        spans[name] = (pos + 2, pos + 2 + len(value))
        pos += 2 + len(value)
    assert pos == len(header.raw)
    spans["ciphertext"] = (pos, len(blob) - TAG_BYTES)
    spans["tag"] = (len(blob) - TAG_BYTES, len(blob))
    assert len(body) == len(blob) - pos
    return spans


def flip(blob: bytes, bit: int) -> bytes:
    out = bytearray(blob)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@FIXTURE_OK
@given(plaintext=st.binary(max_size=2048), mentor_id=contexts, provider=contexts)
def test_round_trip(vault: Vault, plaintext: bytes, mentor_id: str, provider: str) -> None:
    # Given a plaintext sealed for a mentor and provider
    sealed = vault.seal(plaintext, mentor_id=mentor_id, provider=provider)
    # When it is opened with the same context
    opened = vault.open(sealed, mentor_id=mentor_id, provider=provider)
    # Then the plaintext comes back, and the blob does not contain it in the clear
    assert opened == plaintext
    assert len(plaintext) < 8 or plaintext not in sealed


def test_layout_is_v1(vault: Vault, key_arn: str) -> None:
    # Given a sealed blob
    sealed = vault.seal(PLAINTEXT, mentor_id="m-1", provider="google")
    # When its header is parsed
    header, body = parse(sealed)
    # Then it carries magic, version 1, the KMS key ARN, the branch (period) and per-record salt/nonce
    assert sealed.startswith(b"MCV\x01")
    assert (header.version, header.key_arn, header.branch_id) == (1, key_arn, "2026-11")
    assert (len(header.salt), len(header.nonce)) == (SALT_BYTES, NONCE_BYTES)
    assert len(body) == len(PLAINTEXT) + TAG_BYTES
    assert vault.inspect(sealed).key_arn == key_arn


@pytest.mark.parametrize(
    "field",
    [
        "magic",
        "version",
        "key_arn_len",
        "key_arn",
        "branch_id_len",
        "branch_id",
        "wrapped_key_len",
        "wrapped_key",
        "salt_len",
        "salt",
        "nonce_len",
        "nonce",
        "ciphertext",
        "tag",
    ],
)
@pytest.mark.parametrize("where", ["first", "last"])
def test_flipped_bit_in_each_field_fails_closed(vault: Vault, field: str, where: str) -> None:
    # Given a sealed blob and the byte range of one of its fields
    sealed = vault.seal(PLAINTEXT, mentor_id="m-1", provider="google")
    start, end = field_spans(sealed)[field]
    bit = start * 8 if where == "first" else end * 8 - 1
    # When one bit of that field is flipped
    tampered = flip(sealed, bit)
    # Then opening fails closed, and the error carries no key or plaintext material
    with pytest.raises(VaultError) as caught:
        vault.open(tampered, mentor_id="m-1", provider="google")
    assert b"canary" not in str(caught.value).encode()
    assert "canary" not in repr(caught.value)


@settings(FIXTURE_OK, max_examples=300)
@given(data=st.data())
def test_any_flipped_bit_fails(vault: Vault, data: st.DataObject) -> None:
    # Given a sealed blob (the branch key is cached, as in a warm process)
    sealed = vault.seal(PLAINTEXT, mentor_id="m-1", provider="zoom")
    # When hypothesis flips any one bit
    bit = data.draw(st.integers(min_value=0, max_value=len(sealed) * 8 - 1), label="bit")
    # Then it never opens
    with pytest.raises(VaultError):
        vault.open(flip(sealed, bit), mentor_id="m-1", provider="zoom")


@FIXTURE_OK
@given(data=st.data())
def test_any_flipped_bit_in_the_wrapped_key_fails_at_kms(
    vault: Vault, kms_calls: Counter[str], data: st.DataObject
) -> None:
    # Given a sealed blob
    sealed = vault.seal(PLAINTEXT, mentor_id="m-1", provider="zoom")
    decrypts = kms_calls["Decrypt"]
    start, end = field_spans(sealed)["wrapped_key"]
    # When a bit of the embedded wrapped branch key is flipped (a cache miss: KMS must unwrap it)
    bit = data.draw(st.integers(min_value=start * 8, max_value=end * 8 - 1), label="bit")
    # Then the cache misses, KMS is asked and refuses it, and the vault raises VaultError
    with pytest.raises(VaultError):
        vault.open(flip(sealed, bit), mentor_id="m-1", provider="zoom")
    assert kms_calls["Decrypt"] == decrypts + 1


def test_every_truncation_fails(vault: Vault) -> None:
    # Given a sealed blob
    sealed = vault.seal(PLAINTEXT, mentor_id="m-1", provider="google")
    # When it is cut short anywhere (or extended)
    # Then it never opens
    for cut in range(len(sealed)):
        with pytest.raises(VaultError):
            vault.open(sealed[:cut], mentor_id="m-1", provider="google")
    with pytest.raises(VaultError):
        vault.open(sealed + b"\x00", mentor_id="m-1", provider="google")


@pytest.mark.parametrize(
    ("mentor_id", "provider"),
    [("m-2", "google"), ("m-1", "zoom"), ("m-2", "zoom"), ("m-1 ", "google"), ("M-1", "google")],
)
def test_blob_moved_to_another_row_fails(vault: Vault, mentor_id: str, provider: str) -> None:
    # Given a blob sealed for mentor m-1's Google connection
    sealed = vault.seal(PLAINTEXT, mentor_id="m-1", provider="google")
    # When it is copied to another mentor's or provider's row and opened there
    # Then it fails closed
    with pytest.raises(VaultIntegrityError):
        vault.open(sealed, mentor_id=mentor_id, provider=provider)


def test_context_encoding_is_unambiguous(vault: Vault) -> None:
    # Given a blob sealed for ("a", "b|c")
    sealed = vault.seal(b"x", mentor_id="a", provider="b|c")
    # When the boundary between the two context fields is shifted
    # Then it does not open
    with pytest.raises(VaultIntegrityError):
        vault.open(sealed, mentor_id="a|b", provider="c")


def test_empty_context_is_refused(vault: Vault) -> None:
    # Given / When a seal without a mentor id / Then it is refused before any crypto
    with pytest.raises(ValueError, match="non-empty"):
        vault.seal(b"x", mentor_id="", provider="google")


def test_ten_thousand_seals_have_distinct_nonces_and_salts(vault: Vault) -> None:
    # Given 10,000 seals of the same plaintext for the same row
    blobs = [vault.seal(b"same", mentor_id="m-1", provider="google") for _ in range(10_000)]
    # When their headers are parsed
    headers = [parse(blob)[0] for blob in blobs]
    # Then every nonce (and every salt) is different
    assert len({h.nonce for h in headers}) == 10_000
    assert len({h.salt for h in headers}) == 10_000


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"", "not a sealed vault blob"),
        (b"XYZ\x01" + b"\x00" * 64, "not a sealed vault blob"),
        (b"MCV\x02" + b"\x00" * 64, "unsupported sealed format version 2"),
        (b"MCV\x01\x00", "malformed"),
    ],
    ids=["empty", "bad-magic", "version-2", "truncated-header"],
)
def test_unknown_magic_version_or_truncation_is_rejected(vault: Vault, blob: bytes, message: str) -> None:
    # Given bytes that are not a v1 blob / When opened / Then a VaultError names the problem only
    with pytest.raises(VaultIntegrityError, match=message):
        vault.open(blob, mentor_id="m-1", provider="google")


def test_header_fields_are_validated(vault: Vault) -> None:
    # Given a well-formed header whose salt has the wrong length, or whose ARN is not a key ARN
    arn = "arn:aws:kms:us-east-1:123456789012:key/k"
    bad_salt = encode_header(key_arn=arn, branch_id="b", wrapped_key=b"w", salt=b"s", nonce=b"n" * 12)
    bad_arn = encode_header(key_arn="alias/x", branch_id="b", wrapped_key=b"w", salt=b"s" * 16, nonce=b"n" * 12)
    # When opened / Then both are rejected as malformed before any KMS call
    for header in (bad_salt, bad_arn):
        with pytest.raises(VaultIntegrityError, match="malformed"):
            vault.open(header + b"\x00" * 32, mentor_id="m-1", provider="google")
