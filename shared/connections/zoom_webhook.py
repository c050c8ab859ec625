"""Provider webhooks: Zoom's signed events (PRODUCT.md §2.2, specs/NOTES.md §2).

Zoom signs every request it sends to the app, the ``endpoint.url_validation`` challenge included::

    x-zm-request-timestamp: <unix seconds>
    x-zm-signature: v0=<hex(HMAC_SHA256(secret token, "v0:" + timestamp + ":" + raw body))>

:func:`verify_zoom_signature` checks that over the *raw* body bytes (never re-serialised JSON),
in constant time, and refuses timestamps more than :data:`SIGNATURE_TOLERANCE_S` away from now.
:func:`handle_zoom_event` then acts on the verified event:

* ``endpoint.url_validation`` → ``{"plainToken", "encryptedToken": hex(HMAC_SHA256(secret, plainToken))}``;
* ``app_deauthorized`` → the mentor(s) connected as that Zoom user lose their Zoom connection and
  its sealed credential at once (``Store.delete_connection``);
* anything else → acknowledged and ignored.

Finding the mentor by Zoom user id uses the sparse GSI1 (no scan): a Zoom connection carries
``GSI1PK = ZOOMUSER#<zoom user id>`` and ``GSI1SK = <mentor id>`` (:func:`zoom_user_index_keys`);
the connect flow writes them (:func:`index_zoom_connection`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final

from shared.platform.api import ApiError
from shared.platform.observability import logger
from shared.store import Provider, Store
from shared.store.repository import connection_sk, mentor_pk
from shared.store.schema import GSI1

#: Reject a signed request whose timestamp is further than this from now (Zoom and Stripe use 5 min).
SIGNATURE_TOLERANCE_S: Final = 300
SIGNATURE_HEADER: Final = "x-zm-signature"
TIMESTAMP_HEADER: Final = "x-zm-request-timestamp"
SIGNATURE_SCHEME: Final = "v0"

URL_VALIDATION: Final = "endpoint.url_validation"
APP_DEAUTHORIZED: Final = "app_deauthorized"

ZOOM_USER_INDEX_PREFIX: Final = "ZOOMUSER#"


# --- signatures ----------------------------------------------------------------------------------


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def zoom_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``x-zm-signature`` value Zoom sends for ``body`` at ``timestamp``."""
    return f"{SIGNATURE_SCHEME}=" + _hmac_hex(secret, b"v0:" + timestamp.encode("utf-8") + b":" + body)


def zoom_encrypted_token(secret: str, plain_token: str) -> str:
    """The ``encryptedToken`` answer to a URL-validation challenge (lower-case hex)."""
    return _hmac_hex(secret, plain_token.encode("utf-8"))


def invalid_signature(message: str) -> ApiError:
    return ApiError(HTTPStatus.UNAUTHORIZED, "invalid_signature", message)


def verify_zoom_signature(
    secret: str,
    *,
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    now: float | None = None,
    tolerance_s: int = SIGNATURE_TOLERANCE_S,
) -> None:
    """Raise a 401 ``invalid_signature`` :class:`ApiError` unless the request is Zoom's and fresh.

    An unset ``secret`` fails closed: nothing can be verified, so nothing is accepted.
    """
    if not secret:
        logger.error("ZOOM_WEBHOOK_SECRET_TOKEN is not configured: refusing Zoom webhooks")
        raise invalid_signature("The webhook signature could not be verified.")
    if not signature or not timestamp:
        raise invalid_signature(f"Missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header.")
    try:
        sent_at = int(timestamp.strip())
    except ValueError:
        raise invalid_signature(f"{TIMESTAMP_HEADER} is not a Unix timestamp.") from None
    current = time.time() if now is None else now
    # HMAC first, so a forged request learns nothing from the timing of the freshness check.
    expected = zoom_signature(secret, timestamp.strip(), body)
    if not hmac.compare_digest(expected.encode("utf-8"), signature.strip().encode("utf-8")):
        raise invalid_signature("The webhook signature does not match.")
    if abs(current - sent_at) > tolerance_s:
        raise invalid_signature(f"The webhook timestamp is more than {tolerance_s} s away from now.")


# --- the GSI1 entry of a Zoom connection ---------------------------------------------------------


def zoom_user_index_keys(zoom_user_id: str, mentor_id: str) -> dict[str, str]:
    """GSI1 keys that let ``app_deauthorized`` find the mentor connected as ``zoom_user_id``."""
    return {"GSI1PK": f"{ZOOM_USER_INDEX_PREFIX}{zoom_user_id}", "GSI1SK": mentor_id}


def index_zoom_connection(store: Store, mentor_id: str, zoom_user_id: str) -> None:
    """Put an existing Zoom connection in GSI1 under its Zoom user id (the connect flow calls this).

    Does not bump ``version``: the index entry is derived from ``account_id``, not mentor data.
    Raises :class:`shared.store.ConflictError` if the connection does not exist.
    """
    keys = zoom_user_index_keys(zoom_user_id, mentor_id)
    store.table.update(
        mentor_pk(mentor_id),
        connection_sk(Provider.ZOOM),
        expression="SET #g1pk = :g1pk, #g1sk = :g1sk",
        condition="attribute_exists(PK)",
        names={"#g1pk": "GSI1PK", "#g1sk": "GSI1SK"},
        values={":g1pk": keys["GSI1PK"], ":g1sk": keys["GSI1SK"]},
    )


def find_mentors_by_zoom_user(store: Store, zoom_user_id: str) -> list[str]:
    """Mentor ids whose Zoom connection is the Zoom user ``zoom_user_id`` (Query on GSI1, no scan)."""
    found: list[str] = []
    for item in store.table.query(f"{ZOOM_USER_INDEX_PREFIX}{zoom_user_id}", index=GSI1):
        # The index is derived data: trust only items that really are that user's Zoom connection.
        if item.get("provider") != Provider.ZOOM.value or item.get("account_id") != zoom_user_id:
            continue
        mentor = item.get("mentor_id")
        if isinstance(mentor, str) and mentor not in found:
            found.append(mentor)
    return found


def find_mentor_by_zoom_user(store: Store, zoom_user_id: str) -> str | None:
    """The mentor connected as ``zoom_user_id``, or ``None`` (first one if several)."""
    mentors = find_mentors_by_zoom_user(store, zoom_user_id)
    return mentors[0] if mentors else None


# --- events --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZoomEvent:
    """A verified, parsed Zoom webhook body."""

    event: str
    payload: Mapping[str, Any] = field(default_factory=dict)


def _bad_request(message: str) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, "invalid_request", message)


def parse_zoom_event(body: bytes) -> ZoomEvent:
    """The event name and payload of ``body`` (400 ``invalid_request`` if it is not a Zoom event)."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise _bad_request("The body is not valid JSON.") from None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str) or not data["event"]:
        raise _bad_request("The body must be a JSON object with an `event` name.")
    payload = data.get("payload", {})
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise _bad_request("`payload` must be a JSON object.")
    return ZoomEvent(event=data["event"], payload=payload)


def _required_string(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise _bad_request(f"`payload.{name}` must be a non-empty string.")
    return value


def deauthorize_zoom_user(store: Store, zoom_user_id: str) -> list[str]:
    """Delete the Zoom connection (and its sealed credential) of every mentor connected as the user."""
    deleted = []
    for mentor in find_mentors_by_zoom_user(store, zoom_user_id):
        if store.delete_connection(mentor, Provider.ZOOM):
            deleted.append(mentor)
    return deleted


def handle_zoom_event(store: Store, secret: str, event: ZoomEvent) -> dict[str, Any]:
    """Act on a *verified* Zoom event; the JSON body of the 200 answer."""
    if event.event == URL_VALIDATION:
        plain = _required_string(event.payload, "plainToken")
        return {"plainToken": plain, "encryptedToken": zoom_encrypted_token(secret, plain)}
    if event.event == APP_DEAUTHORIZED:
        user_id = _required_string(event.payload, "user_id")
        deleted = deauthorize_zoom_user(store, user_id)
        logger.info(
            "zoom app deauthorized",
            extra={"mentors": deleted, "retention": event.payload.get("user_data_retention")},
        )
        return {"received": True}
    logger.info("zoom event ignored", extra={"zoom_event": event.event})
    return {"received": True}


def process_zoom_webhook(
    store: Store,
    secret: str,
    *,
    headers: Mapping[str, str | None],
    body: bytes,
    now: float | None = None,
) -> dict[str, Any]:
    """Verify, parse and handle one Zoom webhook request (``headers`` keys lower-case)."""
    verify_zoom_signature(
        secret,
        signature=headers.get(SIGNATURE_HEADER),
        timestamp=headers.get(TIMESTAMP_HEADER),
        body=body,
        now=now,
    )
    return handle_zoom_event(store, secret, parse_zoom_event(body))
