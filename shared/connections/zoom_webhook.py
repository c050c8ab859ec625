"""Provider webhooks: Zoom's signed events (PRODUCT.md §2.2, specs/NOTES.md §2).

Zoom signs every request it sends to the app, the ``endpoint.url_validation`` challenge included::

    x-zm-request-timestamp: <unix seconds>
    x-zm-signature: v0=<hex(HMAC_SHA256(secret token, "v0:" + timestamp + ":" + raw body))>

:func:`verify_zoom_signature` checks that over the *raw* body bytes (never re-serialised JSON),
in constant time, and refuses timestamps more than :data:`SIGNATURE_TOLERANCE_S` away from now.
:func:`handle_zoom_event` then acts on the verified event:

* ``endpoint.url_validation`` → ``{"plainToken", "encryptedToken": hex(HMAC_SHA256(secret, plainToken))}``;
* ``meeting.deleted`` / ``meeting.updated`` → handed to ``on_meeting_event(event, payload)`` (drift
  repair, passed in by the composition root: it queues a check if the meeting is one of ours);
* ``app_deauthorized`` → the mentor(s) connected as that Zoom user lose their Zoom connection and
  its sealed credential at once (``Store.delete_connection``) — unless the deauthorization is older
  than the connection (its ``payload.deauthorization_time``, else ``event_ts``, before the
  connection's ``connected_at``: the mentor reconnected since), which is ignored;
* anything else → acknowledged and ignored.

**Replays**: a signed request stays valid for the tolerance window, so every verified signature of
an event (the URL-validation challenge aside: answering it again changes nothing) is remembered
until the window has passed (:meth:`shared.store.guards.Guards.first_time`, a conditional put with
a TTL). The same delivery again is acknowledged (200) and does nothing. Zoom's own retries are
signed afresh (a new timestamp), so they are not replays.

Finding the mentor by Zoom user id uses the sparse GSI1 (no scan): a Zoom connection carries
``GSI1PK = ZOOMUSER#<zoom user id>`` and ``GSI1SK = <mentor id>`` (:func:`zoom_user_index_keys`);
the connect flow writes them (:func:`index_zoom_connection`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final

from shared.platform.api import ApiError
from shared.platform.observability import logger
from shared.store import Provider, Store
from shared.store.guards import Guards
from shared.store.repository import connection_sk, mentor_pk
from shared.store.schema import GSI1

#: Reject a signed request whose timestamp is further than this from now (Zoom and Stripe use 5 min).
SIGNATURE_TOLERANCE_S: Final = 300
SIGNATURE_HEADER: Final = "x-zm-signature"
TIMESTAMP_HEADER: Final = "x-zm-request-timestamp"
SIGNATURE_SCHEME: Final = "v0"

URL_VALIDATION: Final = "endpoint.url_validation"
APP_DEAUTHORIZED: Final = "app_deauthorized"
MEETING_EVENTS: Final = frozenset({"meeting.deleted", "meeting.updated"})
#: Drift repair's hook: ``(event name, payload)`` → whether a check was queued.
MeetingEventHook = Callable[[str, Mapping[str, Any]], bool]

ZOOM_USER_INDEX_PREFIX: Final = "ZOOMUSER#"
#: Seen-marker kind of a verified Zoom signature (:class:`shared.store.guards.Guards`).
SEEN_KIND: Final = "zoom-signature"


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
    #: ``event_ts`` as sent (milliseconds since the epoch), if any.
    raw_ts: Any = None


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
    return ZoomEvent(event=data["event"], payload=payload, raw_ts=data.get("event_ts"))


def _required_string(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise _bad_request(f"`payload.{name}` must be a non-empty string.")
    return value


def event_time(event: ZoomEvent) -> datetime | None:
    """When the event happened by Zoom: ``payload.deauthorization_time``, else ``event_ts`` (ms), else ``None``."""
    stamp = event.payload.get("deauthorization_time")
    if isinstance(stamp, str) and stamp:
        try:
            parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    millis = event.raw_ts
    if isinstance(millis, int | float) and not isinstance(millis, bool) and 0 < millis < 10**14:
        return datetime.fromtimestamp(millis / 1000, UTC)
    return None


def deauthorize_zoom_user(store: Store, zoom_user_id: str, *, happened_at: datetime | None = None) -> list[str]:
    """Delete the Zoom connection (and its sealed credential) of every mentor connected as the user.

    A connection made after ``happened_at`` (the mentor reconnected since) is kept. The delete is
    conditional on the ``connected_at`` that was read, so a reconnect racing with it is kept too.
    """
    deleted = []
    for mentor in find_mentors_by_zoom_user(store, zoom_user_id):
        conn = store.get_connection(mentor, Provider.ZOOM)
        if conn is None:
            continue
        if happened_at is not None and happened_at < conn.connected_at:
            logger.info("zoom deauthorization older than the connection ignored")
            continue
        if store.delete_connection(mentor, Provider.ZOOM, connected_at=conn.connected_at):
            deleted.append(mentor)
    return deleted


def handle_zoom_event(
    store: Store, secret: str, event: ZoomEvent, on_meeting_event: MeetingEventHook | None = None
) -> dict[str, Any]:
    """Act on a *verified* Zoom event; the JSON body of the 200 answer."""
    if event.event in MEETING_EVENTS and on_meeting_event is not None:
        return {"received": True, "checkQueued": on_meeting_event(event.event, event.payload)}
    if event.event == URL_VALIDATION:
        plain = _required_string(event.payload, "plainToken")
        return {"plainToken": plain, "encryptedToken": zoom_encrypted_token(secret, plain)}
    if event.event == APP_DEAUTHORIZED:
        user_id = _required_string(event.payload, "user_id")
        deleted = deauthorize_zoom_user(store, user_id, happened_at=event_time(event))
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
    replays: Guards,
    now: float | None = None,
    tolerance_s: int = SIGNATURE_TOLERANCE_S,
    on_meeting_event: MeetingEventHook | None = None,
) -> dict[str, Any]:
    """Verify, parse and handle one Zoom webhook request (``headers`` keys lower-case).

    A verified signature already seen within the tolerance window is a replay: 200, no effect.
    """
    signature, timestamp = headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER)
    verify_zoom_signature(secret, signature=signature, timestamp=timestamp, body=body, now=now, tolerance_s=tolerance_s)
    event = parse_zoom_event(body)
    if event.event == URL_VALIDATION:  # a pure function of its body: answering it again changes nothing
        return handle_zoom_event(store, secret, event)
    if signature is None or timestamp is None:  # verified above; keeps the type checker informed
        raise invalid_signature(f"Missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header.")
    seen = hashlib.sha256(signature.strip().encode("utf-8")).hexdigest()
    # Remembered past the window in which the signature itself would still be accepted.
    keep_until = int(timestamp.strip()) + tolerance_s + 60
    if not replays.first_time(SEEN_KIND, seen, keep_until=keep_until):
        logger.warning("zoom webhook replay ignored", extra={"zoom_event": event.event})
        return {"received": True}
    try:
        return handle_zoom_event(store, secret, event, on_meeting_event)
    except Exception:
        replays.forget(SEEN_KIND, seen)  # nothing was done: the same delivery may be retried as is
        raise
