"""POST /webhooks/zoom through the local gateway (real HTTP): Zoom's signature scheme, the URL
validation challenge and app deauthorization (PRODUCT.md §2.2, specs/NOTES.md §2)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from devstack.providers import ZoomProvider
from devstack.stack import LocalStack
from shared.connections.zoom_webhook import index_zoom_connection
from shared.store import Connection, Provider, Store, Table
from shared.store.repository import connection_sk, mentor_pk

PATH = "/webhooks/zoom"


@pytest.fixture
def zoom(local_stack: LocalStack) -> ZoomProvider:
    component = local_stack.component("zoom")
    assert isinstance(component, ZoomProvider)
    return component


@pytest.fixture
def secret(local_stack: LocalStack) -> str:
    return local_stack.environment()["ZOOM_WEBHOOK_SECRET_TOKEN"]


@pytest.fixture
def store(local_stack: LocalStack) -> Store:
    return Store(Table(local_stack.client("dynamodb"), local_stack.aws.table_name))


def signed(secret: str, body: bytes, ts: int | None = None) -> dict[str, str]:
    """Headers as Zoom sends them: v0=hex(HMAC_SHA256(secret, "v0:<ts>:<body>"))."""
    stamp = str(int(time.time()) if ts is None else ts)
    digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "x-zm-request-timestamp": stamp, "x-zm-signature": f"v0={digest}"}


def challenge(plain: str) -> bytes:
    event = {"event": "endpoint.url_validation", "payload": {"plainToken": plain}, "event_ts": 1}
    return json.dumps(event).encode()


def deauthorized(user_id: str, at: float | None = None) -> bytes:
    """``app_deauthorized`` for ``user_id``, happening at ``at`` (default now: after any connection made so far)."""
    when = time.time() if at is None else at
    payload: dict[str, Any] = {
        "account_id": "acc-1",
        "user_id": user_id,
        "signature": secrets.token_hex(32),
        "deauthorization_time": datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds"),
        "client_id": "mcZoomDevClient01",
        "user_data_retention": None,
    }
    return json.dumps({"event": "app_deauthorized", "event_ts": int(when * 1000), "payload": payload}).encode()


def put_zoom_connection(store: Store, mentor: str, zoom_user_id: str) -> None:
    """A Zoom connection item as the connect flow must write it: in GSI1 under ZOOMUSER#<id>."""
    now = datetime.now(UTC).isoformat()
    store.table.put(
        {
            "PK": mentor_pk(mentor),
            "SK": connection_sk(Provider.ZOOM),
            "GSI1PK": f"ZOOMUSER#{zoom_user_id}",
            "GSI1SK": mentor,
            "type": "connection",
            "mentor_id": mentor,
            "provider": "zoom",
            "status": "connected",
            "account_label": "Connected as Maya Mentor",
            "account_id": zoom_user_id,
            "plan_type": 2,
            "credential": b"sealed-credential-blob",
            "version": 1,
            "connected_at": now,
            "updated_at": now,
        }
    )


def _unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


# --- url validation ------------------------------------------------------------------------------


def test_signed_challenge_is_answered_per_zoom_scheme(api: httpx.Client, secret: str) -> None:
    # Given a signed endpoint.url_validation challenge
    body = challenge("qgg8vlvZRS6UYooatFL8Aw")
    # When Zoom posts it
    resp = api.post(PATH, content=body, headers=signed(secret, body))
    # Then the answer echoes plainToken with encryptedToken = hex(HMAC_SHA256(secret, plainToken))
    assert resp.status_code == 200
    expected = hmac.new(secret.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert resp.json() == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected}


def test_emulator_challenge_through_admin_route_gets_a_valid_answer(
    zoom: ZoomProvider, local_stack: LocalStack
) -> None:
    # Given the Zoom emulator's admin webhook sender, pointed at the gateway
    # When it sends its signed challenge
    record = httpx.post(
        f"{zoom.emulator.base_url}/_admin/webhooks/url_validation",
        json={"url": f"{local_stack.api_url}{PATH}"},
        timeout=10,
    ).json()
    # Then the emulator judged the app's answer valid
    assert record["status"] == 200
    assert record["valid_answer"] is True


def test_challenge_signed_with_another_secret_is_refused(zoom: ZoomProvider) -> None:
    # When the emulator signs the challenge with a secret that is not the app's
    record = zoom.send_url_validation(secret_token="not-the-app-secret")
    # Then the app refuses it and gives no encryptedToken away
    assert record["status"] == 401
    assert record["response_json"]["error"]["code"] == "invalid_signature"


# --- signature failures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tamper",
    ["bad-signature", "body-changed", "no-signature", "no-timestamp", "garbage-timestamp", "wrong-scheme"],
)
def test_bad_signature_is_401(api: httpx.Client, secret: str, tamper: str) -> None:
    # Given a challenge whose signature does not verify
    body = challenge("abc")
    headers = signed(secret, body)
    sent = body
    if tamper == "bad-signature":
        headers["x-zm-signature"] = "v0=" + "0" * 64
    elif tamper == "body-changed":
        sent = body.replace(b"abc", b"abd")
    elif tamper == "no-signature":
        del headers["x-zm-signature"]
    elif tamper == "no-timestamp":
        del headers["x-zm-request-timestamp"]
    elif tamper == "garbage-timestamp":
        headers["x-zm-request-timestamp"] = "yesterday"
    elif tamper == "wrong-scheme":
        headers["x-zm-signature"] = headers["x-zm-signature"].replace("v0=", "v1=")
    # When it is posted
    resp = api.post(PATH, content=sent, headers=headers)
    # Then it is refused with the contract's envelope
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_signature"
    assert "encryptedToken" not in resp.text


@pytest.mark.parametrize("age_s", [301, 3600, -301])
def test_stale_or_future_timestamp_is_401(api: httpx.Client, secret: str, age_s: int) -> None:
    # Given a correctly signed challenge whose timestamp is more than 300 s away from now
    body = challenge("abc")
    headers = signed(secret, body, ts=int(time.time()) - age_s)
    # When it is posted
    resp = api.post(PATH, content=body, headers=headers)
    # Then it is refused as a replay
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_signature"


def test_timestamp_within_tolerance_is_accepted(api: httpx.Client, secret: str) -> None:
    body = challenge("abc")
    resp = api.post(PATH, content=body, headers=signed(secret, body, ts=int(time.time()) - 240))
    assert resp.status_code == 200


@pytest.mark.parametrize("body", [b"{not json", b"[1,2]", b'{"payload":{}}', b'{"event":"endpoint.url_validation"}'])
def test_malformed_signed_body_is_400(api: httpx.Client, secret: str, body: bytes) -> None:
    resp = api.post(PATH, content=body, headers=signed(secret, body))
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "invalid_request"


def test_signature_covers_raw_bytes_even_when_base64_encoded(api: httpx.Client, secret: str) -> None:
    # Given a body with odd spacing and non-ASCII, sent as a non-text type (API Gateway base64s it)
    body = '{ "event":"endpoint.url_validation",  "payload":{"plainToken":"tök"} }'.encode()
    headers = {**signed(secret, body), "content-type": "application/octet-stream"}
    # When it is posted
    resp = api.post(PATH, content=body, headers=headers)
    # Then the signature verified over the exact bytes
    assert resp.status_code == 200
    assert resp.json()["plainToken"] == "tök"


# --- deauthorization -----------------------------------------------------------------------------


def test_deauthorization_from_emulator_removes_the_connection_and_credential(zoom: ZoomProvider, store: Store) -> None:
    # Given a mentor connected to Zoom as an emulator user, and another mentor's Zoom connection
    email = f"{_unique('deauth')}@example.com"
    user = zoom.emulator.add_user(email)
    mentor, other = _unique("m-deauth"), _unique("m-other")
    put_zoom_connection(store, mentor, user.id)
    put_zoom_connection(store, other, _unique("zoom-user"))
    assert store.get_connection(mentor, "zoom") is not None
    # When Zoom revokes the app for that user and sends the signed app_deauthorized event
    record = zoom.send_deauthorization(email)
    # Then the app acknowledged it, and the mentor's Zoom connection and sealed credential are gone
    assert record["status"] == 200, record
    assert store.table.get(mentor_pk(mentor), connection_sk("zoom")) is None
    assert store.get_connection(other, "zoom") is not None


def test_deauthorization_for_unknown_user_is_a_200_no_op(api: httpx.Client, secret: str, store: Store) -> None:
    # Given a Zoom connection of some other Zoom user
    mentor = _unique("m-keep")
    put_zoom_connection(store, mentor, _unique("zoom-user"))
    # When app_deauthorized arrives for a Zoom user nobody connected
    body = deauthorized(_unique("nobody"))
    resp = api.post(PATH, content=body, headers=signed(secret, body))
    # Then it is acknowledged and nothing changed
    assert resp.status_code == 200
    kept = store.get_connection(mentor, "zoom")
    assert kept is not None
    assert kept.credential == b"sealed-credential-blob"


def test_deauthorization_with_bad_signature_deletes_nothing(api: httpx.Client, store: Store) -> None:
    mentor, zoom_user = _unique("m-forged"), _unique("zoom-user")
    put_zoom_connection(store, mentor, zoom_user)
    body = deauthorized(zoom_user)
    resp = api.post(PATH, content=body, headers=signed("forged-secret", body))
    assert resp.status_code == 401
    assert store.get_connection(mentor, "zoom") is not None


def test_connection_indexed_by_helper_is_found_and_deleted(api: httpx.Client, secret: str, store: Store) -> None:
    # Given a Zoom connection saved by the store and indexed with index_zoom_connection
    mentor, zoom_user = _unique("m-helper"), _unique("zoom-user")
    store.save_connection(
        Connection(mentor_id=mentor, provider=Provider.ZOOM, account_id=zoom_user, credential=b"blob"),
        expected_version=None,
    )
    index_zoom_connection(store, mentor, zoom_user)
    # When app_deauthorized arrives for that Zoom user
    body = deauthorized(zoom_user)
    resp = api.post(PATH, content=body, headers=signed(secret, body))
    # Then the connection is gone
    assert resp.status_code == 200
    assert store.get_connection(mentor, "zoom") is None


def test_other_events_are_acknowledged_and_ignored(api: httpx.Client, secret: str) -> None:
    body = json.dumps({"event": "meeting.created", "payload": {"object": {"id": 1}}, "event_ts": 1}).encode()
    resp = api.post(PATH, content=body, headers=signed(secret, body))
    assert resp.status_code == 200
    assert resp.json() == {"received": True}


def test_a_repeated_challenge_is_answered_again(api: httpx.Client, secret: str) -> None:
    # Given a signed URL-validation challenge (answering it changes nothing, so it is not replay-guarded)
    body = challenge("repeat-me")
    headers = signed(secret, body)
    # When Zoom sends the very same request twice / Then both get the encryptedToken
    first, second = api.post(PATH, content=body, headers=headers), api.post(PATH, content=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert "encryptedToken" in second.json()


def test_a_replayed_event_is_acknowledged_and_changes_nothing(api: httpx.Client, secret: str, store: Store) -> None:
    # Given a signed app_deauthorized for a Zoom user nobody is connected as yet, delivered once
    mentor, zoom_user = _unique("m-replay"), _unique("zoom-user")
    body = deauthorized(zoom_user, at=time.time() + 30)  # Zoom's clock ahead: the event looks newer
    headers = signed(secret, body)
    assert api.post(PATH, content=body, headers=headers).status_code == 200
    # When the mentor then connects as that user and the same delivery is replayed
    put_zoom_connection(store, mentor, zoom_user)
    replay = api.post(PATH, content=body, headers=headers)
    # Then it is acknowledged and the connection stays
    assert (replay.status_code, replay.json()) == (200, {"received": True})
    assert store.get_connection(mentor, "zoom") is not None
