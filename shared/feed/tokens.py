"""The teaching-schedule feed's secret URL (PRODUCT.md §2.8): its token, made, sealed and rotated.

**The token.** ``secrets.token_urlsafe(32)``: 256 random bits, 43 URL-safe characters. Two items
hold it::

    item                 PK                      SK     attributes
    feed lookup          FEED#<sha256(token)>    FEED   mentor_id          (GET /feeds/{token}.ics:
                                                                            one GetItem by hash)
    the mentor's feed    MENTOR#<mentorId>       FEED   token_hash, sealed_token (the vault's blob,
                                                        bound to (mentor, "feed")), created_at,
                                                        rotated_at

The lookup item holds only the token's SHA-256, like a booking token. The mentor item must give the
URL back on every ``GET /mentors/me/feed``, so it keeps the token itself — sealed with the vault
(AES-256-GCM, context ``(mentorId, "feed")``), never as plaintext: a table export or backup does
not hand out anyone's schedule. Both items are written in one transaction: the first
``GET /mentors/me/feed`` creates them (conditional puts: racing first calls end with one feed),
``POST /mentors/me/feed/rotate`` deletes the old lookup, puts the new one and swaps the sealed
token conditional on the old hash, so the old URL answers 404 the moment the call returns.

This module is what ``GET /mentors/me/feed`` and ``POST /mentors/me/feed/rotate`` need (no calendar
library: ``mentors_api``, which serves them, does not load icalendar); :mod:`shared.feed.service`
renders the feed.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from shared.platform.api import ApiError
from shared.platform.config import settings
from shared.platform.observability import logger, register_secret
from shared.store.models import utcnow
from shared.store.table import Table, TransactionConflict, tx_put, tx_update
from shared.vault import Vault, VaultIntegrityError, VaultUnavailableError

#: Random bytes of a feed token (256 bits; PRODUCT.md asks for at least 128).
TOKEN_BYTES: Final = 32
_TOKEN_SHAPE: Final = re.compile(r"^[A-Za-z0-9_-]{43}$")  # token_urlsafe(32): 43 characters, no padding
#: The vault context's "provider": the sealed token opens only for (mentor, "feed").
SEAL_LABEL: Final = "feed"
FEED_SK: Final = "FEED"
SUFFIX: Final = ".ics"


# -- the token ----------------------------------------------------------------------------------


def new_token() -> str:
    """A fresh feed token (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """The SHA-256 (hex) of a token: the only form of it the lookup item holds."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def token_from_path(segment: str) -> str | None:
    """The token in ``<token>.ics`` (API Gateway's ``pathParameters.token``), or ``None`` if malformed."""
    if not segment.endswith(SUFFIX):
        return None
    token = segment[: -len(SUFFIX)]
    return token if _TOKEN_SHAPE.fullmatch(token) else None


def lookup_pk(hashed: str) -> str:
    """Partition of the lookup item of a token hash."""
    return f"FEED#{hashed}"


def _mentor_pk(mentor_id: str) -> str:
    return f"MENTOR#{mentor_id}"


class FeedUrls(BaseModel):
    """``GET /mentors/me/feed`` and ``POST /mentors/me/feed/rotate``: where calendar apps subscribe."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    url: str
    webcal_url: str


def feed_urls(token: str, api_url: str) -> FeedUrls:
    """The https (or http, locally) URL of the feed and its ``webcal://`` twin."""
    url = f"{api_url.rstrip('/')}/feeds/{token}{SUFFIX}"
    _, sep, rest = url.partition("://")
    return FeedUrls(url=url, webcal_url=f"webcal://{rest}" if sep else url)


class FeedTokens:
    """The mentor's feed token: create on first use, read back (sealed), rotate."""

    def __init__(self, table: Table, vault: Vault) -> None:
        self.table = table
        self.vault = vault

    def ensure(self, mentor_id: str) -> str:
        """The mentor's current token, created on the first call (idempotent, race-safe)."""
        item = self.table.get(_mentor_pk(mentor_id), FEED_SK)
        if item is not None:
            return self._open(mentor_id, item)
        token = new_token()
        hashed, now = token_hash(token), utcnow().isoformat()
        ops = [
            tx_put(_lookup_item(hashed, mentor_id, now), condition="attribute_not_exists(PK)"),
            tx_put(
                {
                    "PK": _mentor_pk(mentor_id),
                    "SK": FEED_SK,
                    "type": "feed",
                    "token_hash": hashed,
                    "sealed_token": self._seal(mentor_id, token),
                    "created_at": now,
                    "rotated_at": now,
                },
                condition="attribute_not_exists(PK)",
            ),
        ]
        try:
            self.table.transact(ops)
        except TransactionConflict:
            item = self.table.get(_mentor_pk(mentor_id), FEED_SK)
            if item is None:
                raise
            return self._open(mentor_id, item)  # a concurrent first call created it: use that one
        logger.info("feed created")
        return token

    def rotate(self, mentor_id: str, *, attempts: int = 3) -> str:
        """Replace the token: the old URL stops working at once. Returns the new token.

        A concurrent rotation that wins the race has done what was asked (the old URL is dead):
        its token is returned rather than rotating a second time.
        """
        foreign_lookup = False
        for _ in range(attempts + 1):
            item = self.table.get(_mentor_pk(mentor_id), FEED_SK)
            if item is None:
                return self.ensure(mentor_id)
            old_hash = str(item["token_hash"])
            token = new_token()
            hashed, now = token_hash(token), utcnow().isoformat()
            # The old lookup goes, unless it is another mentor's (a damaged item must not kill their URL).
            drop_old = [] if foreign_lookup else [_delete_own_lookup(old_hash, mentor_id)]
            ops = [
                *drop_old,
                tx_put(_lookup_item(hashed, mentor_id, now), condition="attribute_not_exists(PK)"),
                tx_update(
                    _mentor_pk(mentor_id),
                    FEED_SK,
                    expression="SET #h = :h, #s = :s, #r = :now",
                    condition="#h = :old",
                    names={"#h": "token_hash", "#s": "sealed_token", "#r": "rotated_at"},
                    values={":h": hashed, ":s": self._seal(mentor_id, token), ":now": now, ":old": old_hash},
                ),
            ]
            try:
                self.table.transact(ops)
            except TransactionConflict as exc:
                if drop_old and 0 in exc.failed:
                    foreign_lookup = True
                    continue
                current = self.table.get(_mentor_pk(mentor_id), FEED_SK)
                if current is not None and current.get("token_hash") != old_hash:
                    return self._open(mentor_id, current)
                continue
            logger.info("feed rotated")
            return token
        raise ApiError(HTTPStatus.CONFLICT, "feed_conflict", "The feed changed meanwhile; try again.")

    def _seal(self, mentor_id: str, token: str) -> bytes:
        register_secret(token)
        try:
            return self.vault.seal(token.encode("ascii"), mentor_id=mentor_id, provider=SEAL_LABEL)
        except VaultUnavailableError:
            raise _unavailable() from None

    def _open(self, mentor_id: str, item: Mapping[str, Any]) -> str:
        try:
            token = self.vault.open(bytes(item["sealed_token"]), mentor_id=mentor_id, provider=SEAL_LABEL).decode(
                "ascii"
            )
            if token_hash(token) != item.get("token_hash"):
                raise VaultIntegrityError("sealed feed token does not match its hash")
        except VaultUnavailableError:
            raise _unavailable() from None
        except (VaultIntegrityError, KeyError, UnicodeDecodeError) as exc:
            # Unreadable (damaged, or sealed for another row): the URL cannot be shown again, so the
            # only way forward is a new one; the unreadable token's lookup goes with the rotation.
            logger.error("feed token unreadable; rotating", extra={"error": type(exc).__name__})
            return self.rotate(mentor_id)
        register_secret(token)
        return token


def _delete_own_lookup(hashed: str, mentor_id: str) -> dict[str, Any]:
    """A transaction part deleting the lookup of ``hashed`` if it is absent or ``mentor_id``'s."""
    return {
        "Delete": {
            "Key": {"PK": lookup_pk(hashed), "SK": FEED_SK},
            "ConditionExpression": "attribute_not_exists(PK) OR #m = :m",
            "ExpressionAttributeNames": {"#m": "mentor_id"},
            "ExpressionAttributeValues": {":m": mentor_id},
        }
    }


def _lookup_item(hashed: str, mentor_id: str, now: str) -> dict[str, Any]:
    return {"PK": lookup_pk(hashed), "SK": FEED_SK, "type": "feed_token", "mentor_id": mentor_id, "created_at": now}


def _unavailable() -> ApiError:
    return ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "feed_unavailable", "The feed is unavailable; try again shortly.")


def mentor_for_token(table: Table, token: str) -> str | None:
    """The mentor whose current feed ``token`` is, or ``None`` (unknown or rotated away)."""
    item = table.get(lookup_pk(token_hash(token)), FEED_SK)
    return str(item["mentor_id"]) if item else None


def mentor_feed(table: Table, vault: Vault, mentor_id: str, *, rotate: bool = False) -> FeedUrls:
    """``GET /mentors/me/feed`` (the current URL, created on the first call) or, with ``rotate``,
    ``POST /mentors/me/feed/rotate`` (a new URL; the old one is dead when this returns)."""
    tokens = FeedTokens(table, vault)
    token = tokens.rotate(mentor_id) if rotate else tokens.ensure(mentor_id)
    return feed_urls(token, settings().api_url)
