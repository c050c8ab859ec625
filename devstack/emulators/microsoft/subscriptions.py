"""Change-notification subscriptions: ``POST /v1.0/subscriptions``, ``PATCH`` (renew) and
``DELETE /v1.0/subscriptions/{subscription-id}``.

Rules (NOTES-msgraph §6):

* ``resource`` is the signed-in user's events: ``me/events`` (the default calendar),
  ``me/calendars/{id}/events`` or the same under ``users/{id or UPN}/``; another mailbox is 403.
* ``notificationUrl`` (and ``lifecycleNotificationUrl``) must be ``https://`` - ``http://`` on
  loopback only where the emulator allows it (the local stack) - and pass the ``validationToken``
  handshake within 10 s, or no subscription is made (400 ``ValidationError``). The handshake runs
  outside the state lock, so the app may call Graph while answering it.
* ``expirationDateTime`` must be in the future and at most ``subscription_max_minutes`` (4,230)
  ahead: refused (400) or, with ``subscription_cap_mode="clamp"``, cut to the cap; ``clientState``
  at most 128 characters; at most 1,000 subscriptions per mailbox (403).
* Only the app that made a subscription sees it; an expired one is gone (404). A PATCH may change
  ``expirationDateTime`` and ``notificationUrl`` only (a lifecycle URL cannot be added later); it
  answers 200 with the subscription and clears a pending ``reauthorizationRequired``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint
from flask.typing import ResponseReturnValue

from devstack.emulators.common import JSONDict, abort_with, empty_response, json_response, parse_rfc3339
from devstack.emulators.microsoft import guards
from devstack.emulators.microsoft.errors import bad_request, graph_error
from devstack.emulators.microsoft.event_data import graph_timestamp
from devstack.emulators.microsoft.model import (
    CHANGE_TYPES,
    SUBSCRIPTIONS_PER_MAILBOX,
    TLS_VERSIONS,
    MsAccessToken,
    MsUser,
    Subscription,
)
from devstack.emulators.microsoft.notify import validate_endpoint, validation_token
from devstack.emulators.microsoft.state import MicrosoftState

_TYPE = "microsoft.graph.subscription"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_RESOURCE = re.compile(r"(?:me|users/(?P<who>[^/]+))(?:/calendar|/calendars/(?P<cal>[^/]+))?/events", re.I)


def blueprint(state: MicrosoftState) -> Blueprint:
    bp = Blueprint("microsoft_subscriptions", __name__, url_prefix=guards.API_PREFIX)

    @bp.post("/subscriptions")
    def create_subscription() -> ResponseReturnValue:
        with state.lock:
            at, user = guards.authorize(state, "createSubscription")
            body = guards.body_object()
            guards.check_body(state, "createSubscription", body, _TYPE)
            sub = _new_subscription(state, at, user, body)
            timeout = state.settings.validation_timeout_seconds
        _handshake(state, sub.id, sub.notification_url, timeout)
        if sub.lifecycle_url:
            _handshake(state, sub.id, sub.lifecycle_url, timeout)
        with state.lock:
            state.subscriptions[sub.id] = sub
            return json_response(subscription_json(sub), 201)

    @bp.patch("/subscriptions/<subscription_id>")
    def update_subscription(subscription_id: str) -> ResponseReturnValue:
        with state.lock:
            at, _user = guards.authorize(state, "updateSubscription")
            sub = _subscription_for(state, at, subscription_id)
            body = guards.body_object()
            guards.check_body(state, "updateSubscription", body, _TYPE)
            extra = sorted(set(body) - {"expirationDateTime", "notificationUrl", "@odata.type"})
            if extra:
                abort_with(
                    bad_request(
                        f"Only expirationDateTime and notificationUrl can be updated, not {', '.join(extra)}.",
                        "InvalidRequest",
                    )
                )
            expiration = (
                _expiration(state, body["expirationDateTime"]) if "expirationDateTime" in body else sub.expiration
            )
            url = _endpoint(state, body["notificationUrl"], "notificationUrl") if "notificationUrl" in body else None
            timeout = state.settings.validation_timeout_seconds
        if url is not None and url != sub.notification_url:
            _handshake(state, sub.id, url, timeout)
        with state.lock:
            sub.expiration = expiration
            sub.notification_url = url or sub.notification_url
            sub.reauthorization_required = False
            return json_response(subscription_json(sub))

    @bp.delete("/subscriptions/<subscription_id>")
    def delete_subscription(subscription_id: str) -> ResponseReturnValue:
        with state.lock:
            at, _user = guards.authorize(state, "deleteSubscription")
            sub = _subscription_for(state, at, subscription_id)
            remove(state, sub, "deleted by the app")
            return empty_response(204)

    return bp


def remove(state: MicrosoftState, sub: Subscription, why: str) -> None:
    state.subscriptions.pop(sub.id, None)
    state.deleted_subscriptions.append({"id": sub.id, "why": why, "ts": state.now()})


def subscription_json(sub: Subscription) -> JSONDict:
    return {
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
        "id": sub.id,
        "resource": sub.resource,
        "applicationId": sub.client_id,
        "changeType": ",".join(sub.change_types),
        "clientState": sub.client_state,
        "notificationUrl": sub.notification_url,
        "notificationQueryOptions": None,
        "lifecycleNotificationUrl": sub.lifecycle_url,
        "expirationDateTime": graph_timestamp(sub.expiration),
        "creatorId": sub.user_id,
        "includeResourceData": False,
        "latestSupportedTlsVersion": sub.tls_version,
        "encryptionCertificate": None,
        "encryptionCertificateId": None,
        "notificationUrlAppId": None,
    }


def _subscription_for(state: MicrosoftState, at: MsAccessToken, subscription_id: str) -> Subscription:
    sub = state.subscriptions.get(subscription_id)
    if sub is None or sub.client_id != at.client_id or sub.user_id != at.user_id or sub.expiration <= state.now():
        abort_with(graph_error(404, "ResourceNotFound", "The object was not found."))
    return sub


def _new_subscription(state: MicrosoftState, at: MsAccessToken, user: MsUser, body: Mapping[str, Any]) -> Subscription:
    for name in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
        if not body.get(name):
            abort_with(bad_request(f"The {name} property is required.", "InvalidRequest"))
    changes = [c.strip() for c in str(body["changeType"]).split(",") if c.strip()]
    if not changes or any(c not in CHANGE_TYPES for c in changes):
        abort_with(
            bad_request(
                f"'{body['changeType']}' is not a valid changeType: use created, updated, deleted.", "InvalidRequest"
            )
        )
    calendar_id = _calendar_of(state, user, str(body["resource"]))
    client_state = body.get("clientState")
    if client_state is not None and len(str(client_state)) > state.settings.client_state_max:
        abort_with(
            bad_request(f"clientState is longer than {state.settings.client_state_max} characters.", "InvalidRequest")
        )
    tls = str(body.get("latestSupportedTlsVersion") or "v1_2")
    if tls not in TLS_VERSIONS:
        abort_with(bad_request(f"'{tls}' is not a valid latestSupportedTlsVersion.", "InvalidRequest"))
    if body.get("includeResourceData"):
        abort_with(
            bad_request(
                "includeResourceData needs an encryptionCertificate, which this app did not send.", "InvalidRequest"
            )
        )
    mine = [s for s in state.subscriptions.values() if s.user_id == user.id and s.expiration > state.now()]
    if len(mine) >= SUBSCRIPTIONS_PER_MAILBOX:
        abort_with(
            graph_error(
                403,
                "ExtensionError",
                "Operation: Create; Exception: [Status Code: Forbidden; Reason: The maximum number of "
                f"{SUBSCRIPTIONS_PER_MAILBOX} subscriptions per mailbox has been reached.]",
            )
        )
    lifecycle = body.get("lifecycleNotificationUrl")
    return Subscription(
        id=str(uuid.uuid4()),
        resource=str(body["resource"]),
        calendar_id=calendar_id,
        change_types=changes,
        notification_url=_endpoint(state, body["notificationUrl"], "notificationUrl"),
        lifecycle_url=_endpoint(state, lifecycle, "lifecycleNotificationUrl") if lifecycle else None,
        client_state=None if client_state is None else str(client_state),
        expiration=_expiration(state, body["expirationDateTime"]),
        client_id=at.client_id,
        user_id=user.id,
        tls_version=tls,
        created=state.now(),
    )


def _calendar_of(state: MicrosoftState, user: MsUser, resource: str) -> str:
    match = _RESOURCE.fullmatch(resource.strip().strip("/"))
    if match is None:
        abort_with(
            bad_request(
                f"The resource '{resource}' is not supported: subscribe to me/events or me/calendars/{{id}}/events.",
                "InvalidRequest",
            )
        )
    who = match.group("who")
    if who is not None and who.lower() not in (
        user.id.lower(),
        user.user_principal_name.lower(),
        (user.mail or "").lower(),
    ):
        abort_with(
            graph_error(
                403,
                "ExtensionError",
                "Operation: Create; Exception: [Status Code: Forbidden; Reason: Access is denied.]",
            )
        )
    cal_id = match.group("cal")
    if cal_id is None:
        return state.default_calendar(user).id
    return guards.calendar_for(state, user, cal_id).id


def _endpoint(state: MicrosoftState, raw: Any, name: str) -> str:
    url = str(raw)
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname:
        if not state.settings.require_https_notifications:
            return url
        if state.allow_http_loopback_notifications and parts.hostname in _LOOPBACK:
            return url
    abort_with(bad_request(f"The {name} must use the HTTPS protocol: {url}", "InvalidRequest"))


def _expiration(state: MicrosoftState, raw: Any) -> float:
    dt = parse_rfc3339(str(raw))
    if dt is None:
        abort_with(
            bad_request(f"Cannot convert the literal '{raw}' to the expected type 'Edm.DateTimeOffset'.", "BadRequest")
        )
    ts = dt.timestamp() if dt.tzinfo else dt.replace(tzinfo=UTC).timestamp()
    now = state.now()
    if ts <= now:
        abort_with(bad_request("Subscription expiration must be in the future.", "InvalidRequest"))
    cap = now + state.settings.subscription_max_minutes * 60
    if ts > cap:
        if state.settings.subscription_cap_mode != "clamp":
            abort_with(
                bad_request(
                    "Subscription expiration can only be "
                    f"{state.settings.subscription_max_minutes} minutes in the future.",
                    "InvalidRequest",
                )
            )
        ts = cap
    return ts


def _handshake(state: MicrosoftState, subscription_id: str, url: str, timeout: float) -> None:
    """Graph's validation request; a failed one refuses the create or the change (400)."""
    record = validate_endpoint(url, validation_token(subscription_id), timeout)
    with state.lock:
        state.validations.append({**record, "ts": state.now(), "subscription_id": subscription_id})
    if not record["ok"]:
        abort_with(
            bad_request(
                "Subscription validation request failed. Notification endpoint must respond with 200 OK to "
                f"validation request. ({record.get('error')})",
                "ValidationError",
            )
        )
