"""Attack: replaying Zoom's signed ``app_deauthorized`` (PRODUCT.md §2.2).

A signed webhook stays valid for the signature tolerance (5 minutes). Before issue 14 the same
delivery, replayed after the mentor had reconnected, deleted the new Zoom connection. Now a
verified signature is remembered for the tolerance window (a repeat is a 200 with no effect), and
a deauthorization older than the connection's ``connected_at`` is ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from e2e_support import Providers

from devstack import flows
from shared.store import Store

PATH = "/webhooks/zoom"


def _signed(body: bytes) -> dict[str, str]:
    """Headers as Zoom sends them, signed with the secret the functions use, timestamped now."""
    secret = os.environ["ZOOM_WEBHOOK_SECRET_TOKEN"]
    stamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "x-zm-request-timestamp": stamp, "x-zm-signature": f"v0={digest}"}


def _deauthorized(user_id: str, at: float) -> bytes:
    """Zoom's ``app_deauthorized`` body for ``user_id``, the deauthorization happening at ``at`` (Zoom's clock)."""
    when = datetime.fromtimestamp(at, UTC)
    payload = {
        "account_id": "acc-1",
        "user_id": user_id,
        "signature": secrets.token_hex(32),
        "deauthorization_time": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(at * 1000) % 1000:03d}Z",
        "client_id": "mcZoomDevClient01",
        "user_data_retention": "false",
    }
    return json.dumps({"event": "app_deauthorized", "event_ts": int(at * 1000), "payload": payload}).encode()


def test_replayed_deauthorization_after_reconnect_changes_nothing(
    api: httpx.Client, providers: Providers, stack_store: Store, mentor_headers: Callable[..., dict[str, str]]
) -> None:
    # Given a mentor connected to Zoom
    mentor = f"sec-zoom-{uuid.uuid4().hex[:8]}"
    headers = mentor_headers(mentor)
    email = flows.seed_zoom_account(providers.zoom, f"{mentor}@example.com", plan=2)
    flows.connect_oauth(api, headers, "zoom")
    user = providers.zoom.state.user_by_email(email)
    assert user is not None
    assert stack_store.get_connection(mentor, "zoom") is not None
    # And Zoom deauthorizes the app (its clock a minute ahead of ours: the event looks "newer")
    body = _deauthorized(user.id, time.time() + 60)
    sent = _signed(body)
    first = api.post(PATH, content=body, headers=sent)
    assert first.status_code == 200, first.text
    assert stack_store.get_connection(mentor, "zoom") is None
    # When the mentor reconnects, and an attacker replays the captured delivery (same signature)
    providers.zoom.set_next_consent(email)
    flows.connect_oauth(api, headers, "zoom")
    reconnected = stack_store.get_connection(mentor, "zoom")
    assert reconnected is not None
    replay = api.post(PATH, content=body, headers=sent)
    # Then it is acknowledged (200) and changes nothing: the new connection stays
    assert replay.status_code == 200, replay.text
    assert stack_store.get_connection(mentor, "zoom") == reconnected


def test_deauthorization_older_than_the_connection_is_ignored(
    api: httpx.Client, providers: Providers, stack_store: Store, mentor_headers: Callable[..., dict[str, str]]
) -> None:
    # Given a mentor who connected Zoom just now
    mentor = f"sec-zoom-{uuid.uuid4().hex[:8]}"
    headers = mentor_headers(mentor)
    email = flows.seed_zoom_account(providers.zoom, f"{mentor}@example.com", plan=2)
    flows.connect_oauth(api, headers, "zoom")
    user = providers.zoom.state.user_by_email(email)
    conn = stack_store.get_connection(mentor, "zoom")
    assert user is not None
    assert conn is not None
    # When a freshly signed app_deauthorized arrives for a deauthorization from before that connect
    body = _deauthorized(user.id, conn.connected_at.timestamp() - 60)
    resp = api.post(PATH, content=body, headers=_signed(body))
    # Then it is acknowledged and ignored: the connection stays as it was
    assert resp.status_code == 200, resp.text
    assert stack_store.get_connection(mentor, "zoom") == conn
    # And a deauthorization after the connect still removes it
    newer = _deauthorized(user.id, time.time())
    assert api.post(PATH, content=newer, headers=_signed(newer)).status_code == 200
    assert stack_store.get_connection(mentor, "zoom") is None
