"""Webhooks (Zoom -> app), signed as in specs/NOTES.md §2: ``endpoint.url_validation`` and
``app_deauthorized``, sent through ``POST /_admin/webhooks/...`` or the Python knobs.

Rules: the signature is ``v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}")`` in
``x-zm-signature``; the secret is the client's ``webhook_secret_token`` unless one is given; every
delivery (status, answer or error) is recorded in ``state.webhook_deliveries``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime

import httpx
from flask import Blueprint
from flask.typing import ResponseReturnValue

from devstack.emulators.common import ADMIN_PREFIX, JSONDict, json_response, random_urlsafe, request_json_object
from devstack.emulators.zoom.model import DEFAULT_CLIENT_ID, ZoomUser
from devstack.emulators.zoom.state import ZoomState


def sign_webhook(secret_token: str, timestamp: str, body: bytes) -> str:
    message = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret_token.encode(), message, hashlib.sha256).hexdigest()


def send_webhook(state: ZoomState, url: str, payload: JSONDict, secret_token: str) -> JSONDict:
    body = json.dumps(payload, separators=(",", ":")).encode()
    ts = str(int(state.now()))
    headers = {
        "Content-Type": "application/json",
        "x-zm-request-timestamp": ts,
        "x-zm-signature": sign_webhook(secret_token, ts, body),
    }
    record: JSONDict = {"ts": state.now(), "url": url, "event": payload.get("event"), "payload": payload}
    try:
        resp = httpx.post(url, content=body, headers=headers, timeout=5.0)
        record["status"] = resp.status_code
        with contextlib.suppress(ValueError):
            record["response_json"] = resp.json()
    except httpx.HTTPError as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
    with state.lock:
        state.webhook_deliveries.append(record)
    return record


def url_validation_payload(state: ZoomState, plain_token: str | None = None) -> JSONDict:
    return {
        "event": "endpoint.url_validation",
        "payload": {"plainToken": plain_token or random_urlsafe(16)},
        "event_ts": int(state.now() * 1000),
    }


def deauthorization_payload(
    state: ZoomState, user: ZoomUser, client_id: str, retention: bool | None = None
) -> JSONDict:
    now = state.now()
    return {
        "event": "app_deauthorized",
        "event_ts": int(now * 1000),
        "payload": {
            "account_id": user.account_id,
            "user_id": user.id,
            "signature": secrets.token_hex(32),
            "deauthorization_time": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{int(now * 1000) % 1000:03d}Z",
            "client_id": client_id,
            "user_data_retention": None if retention is None else ("true" if retention else "false"),
        },
    }


def secret_for(state: ZoomState, client_id: str, secret_token: str | None) -> str:
    """The secret to sign with: the given one, else the client's webhook secret token."""
    client = state.clients.get(client_id)
    return str(secret_token or (client.webhook_secret_token if client else ""))


def blueprint(state: ZoomState) -> Blueprint:
    bp = Blueprint("zoom_webhooks", __name__, url_prefix=f"{ADMIN_PREFIX}/webhooks")

    @bp.post("/url_validation")
    def admin_url_validation() -> ResponseReturnValue:
        """``{"url": ..., "secret_token"?: ..., "client_id"?: ...}`` - sends the challenge and
        reports whether the app's answer carried the right encryptedToken."""
        b = request_json_object() or {}
        secret = secret_for(state, str(b.get("client_id", DEFAULT_CLIENT_ID)), b.get("secret_token"))
        payload = url_validation_payload(state, b.get("plain_token"))
        record = send_webhook(state, str(b["url"]), payload, secret)
        plain = payload["payload"]["plainToken"]
        expected = hmac.new(secret.encode(), plain.encode(), hashlib.sha256).hexdigest()
        answer = record.get("response_json") or {}
        record["valid_answer"] = (
            record.get("status") == 200
            and isinstance(answer, dict)
            and answer.get("plainToken") == plain
            and answer.get("encryptedToken") == expected
        )
        return json_response(record)

    @bp.post("/deauthorize")
    def admin_deauthorize() -> ResponseReturnValue:
        """``{"url", "email", "client_id"?, "secret_token"?, "revoke"?: true}`` - Zoom revokes the
        user's tokens for the app, then tells the app."""
        b = request_json_object() or {}
        user = state.user_by_email(str(b.get("email", "")))
        if user is None:
            return json_response({"error": "unknown user"}, 404)
        client_id = str(b.get("client_id", DEFAULT_CLIENT_ID))
        secret = secret_for(state, client_id, b.get("secret_token"))
        if b.get("revoke", True):
            state.revoke_user(user.email)
        record = send_webhook(state, str(b["url"]), deauthorization_payload(state, user, client_id), secret)
        return json_response(record)

    return bp
