"""The sealed format (v1): a self-contained AES-256-GCM envelope bound to a mentor and a provider.

Layout (all lengths big-endian ``uint16``)::

    b"MCV" | version (1 byte, = 1)
    | len | KMS key ARN (UTF-8)          the KMS key that wrapped the branch key
    | len | branch id (UTF-8)            e.g. "2026-11"
    | len | wrapped branch key           the KMS CiphertextBlob, so opening never needs the branch item
    | len | salt (16 bytes)              HKDF salt of this record's key
    | len | nonce (12 bytes)             AES-GCM nonce
    ciphertext || tag (16 bytes)

The per-record key is ``HKDF-SHA256(branch key, salt, INFO + canonical context)`` and the AES-GCM
associated data is ``header bytes + canonical context``. The context (mentor id, provider) is not
stored: it comes from the row the blob is read from, so a blob copied to another row fails to open.
Every byte of the header is authenticated, so any flipped bit fails closed.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.vault.errors import VaultError, VaultIntegrityError

MAGIC: Final = b"MCV"
VERSION: Final = 1
HKDF_INFO: Final = b"mentor-connections/vault/v1"
KEY_BYTES: Final = 32
SALT_BYTES: Final = 16
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
_LEN: Final = struct.Struct(">H")
_MAX_FIELD: Final = 0xFFFF


@dataclass(frozen=True, slots=True)
class SealContext:
    """Who a sealed record belongs to; authenticated but never stored in the blob."""

    mentor_id: str
    provider: str

    def __post_init__(self) -> None:
        if not self.mentor_id or not self.provider:
            raise ValueError("mentor_id and provider must be non-empty")

    def encode(self) -> bytes:
        """Canonical, unambiguous bytes of the context (sorted-key ASCII JSON)."""
        doc = {"mentor_id": self.mentor_id, "provider": self.provider}
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


@dataclass(frozen=True, slots=True)
class Header:
    """The parsed, not yet authenticated, header of a sealed blob (no secret in it)."""

    key_arn: str
    branch_id: str
    wrapped_key: bytes = field(repr=False)
    salt: bytes = field(repr=False)
    nonce: bytes = field(repr=False)
    raw: bytes = field(repr=False)
    version: int = VERSION


def _field(value: bytes) -> bytes:
    if len(value) > _MAX_FIELD:
        raise VaultError("sealed header field too long")
    return _LEN.pack(len(value)) + value


def encode_header(*, key_arn: str, branch_id: str, wrapped_key: bytes, salt: bytes, nonce: bytes) -> bytes:
    """The v1 header bytes for these fields."""
    return b"".join(
        (
            MAGIC,
            bytes((VERSION,)),
            _field(key_arn.encode("utf-8")),
            _field(branch_id.encode("utf-8")),
            _field(wrapped_key),
            _field(salt),
            _field(nonce),
        )
    )


def _malformed() -> VaultIntegrityError:
    return VaultIntegrityError("sealed blob is malformed")


def parse(blob: bytes) -> tuple[Header, bytes]:
    """Split ``blob`` into its header and ``ciphertext || tag``; raise if it is not a v1 blob.

    Nothing is authenticated yet: callers must still open it (which authenticates the header).
    """
    blob = bytes(blob)
    if len(blob) < len(MAGIC) + 1 or blob[: len(MAGIC)] != MAGIC:
        raise VaultIntegrityError("not a sealed vault blob")
    version = blob[len(MAGIC)]
    if version != VERSION:
        raise VaultIntegrityError(f"unsupported sealed format version {version}")
    pos = len(MAGIC) + 1
    fields: list[bytes] = []
    for _ in range(5):
        if pos + _LEN.size > len(blob):
            raise _malformed()
        (size,) = _LEN.unpack_from(blob, pos)
        pos += _LEN.size
        if pos + size > len(blob):
            raise _malformed()
        fields.append(blob[pos : pos + size])
        pos += size
    arn_b, branch_b, wrapped, salt, nonce = fields
    if len(salt) != SALT_BYTES or len(nonce) != NONCE_BYTES or not wrapped:
        raise _malformed()
    try:
        key_arn, branch_id = arn_b.decode("utf-8"), branch_b.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed() from None
    if not branch_id or not (key_arn.startswith("arn:") and ":key/" in key_arn):
        raise _malformed()
    body = blob[pos:]
    if len(body) < TAG_BYTES:
        raise _malformed()
    header = Header(
        key_arn=key_arn,
        branch_id=branch_id,
        wrapped_key=wrapped,
        salt=salt,
        nonce=nonce,
        raw=blob[:pos],
    )
    return header, body


def derive_record_key(branch_key: bytes, salt: bytes, context: SealContext) -> bytes:
    """The per-record AES-256 key: HKDF-SHA256(branch key, salt, INFO + canonical context)."""
    hkdf = HKDF(algorithm=SHA256(), length=KEY_BYTES, salt=salt, info=HKDF_INFO + context.encode())
    return hkdf.derive(branch_key)


def seal(
    plaintext: bytes,
    *,
    context: SealContext,
    key_arn: str,
    branch_id: str,
    wrapped_key: bytes,
    branch_key: bytes,
) -> bytes:
    """Seal ``plaintext`` under ``branch_key`` (whose KMS-wrapped form is ``wrapped_key``)."""
    salt = os.urandom(SALT_BYTES)
    nonce = os.urandom(NONCE_BYTES)
    header = encode_header(key_arn=key_arn, branch_id=branch_id, wrapped_key=wrapped_key, salt=salt, nonce=nonce)
    record_key = derive_record_key(branch_key, salt, context)
    return header + AESGCM(record_key).encrypt(nonce, plaintext, header + context.encode())


def open_sealed(blob: bytes, *, context: SealContext, unwrap: Callable[[Header], bytes]) -> bytes:
    """Authenticate and decrypt ``blob``; ``unwrap`` turns its header into the plaintext branch key."""
    header, body = parse(blob)
    branch_key = unwrap(header)
    record_key = derive_record_key(branch_key, header.salt, context)
    try:
        return AESGCM(record_key).decrypt(header.nonce, body, header.raw + context.encode())
    except InvalidTag:
        raise VaultIntegrityError("sealed blob failed authentication") from None
