"""Attack: OAuth account-linking CSRF (RFC 6749 §10.12, RFC 9700 §4.7; PRODUCT.md §2.2).

Mentor A starts a Google/Zoom connect and sends the consent URL to mentor B. B consents in B's own
browser, which lands on our callback. Before issue 14 the callback stored the connection for A —
B's account attached to A. Now the callback only parks the sealed tokens under a single-use pending
handle; completing needs the JWT of the mentor who started the flow.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from e2e_support import APP_URL, Providers

from devstack import flows
from shared.store import Store

CONNECTIONS_PAGE = f"{APP_URL}/mentor/settings/connections"


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _mentor_items(store: Store, mentor: str) -> list[dict[str, Any]]:
    return list(store.table.query(f"MENTOR#{mentor}"))


def _pending_item(store: Store, handle: str) -> dict[str, Any] | None:
    """The parked connection of ``handle`` (stored under the handle's SHA-256 only)."""
    return store.table.get("OAUTHPENDING#" + hashlib.sha256(handle.encode()).hexdigest(), "PENDING")


@pytest.mark.parametrize("provider", ["google", "zoom"])
def test_consent_started_by_a_and_completed_by_b_is_refused(
    api: httpx.Client,
    providers: Providers,
    stack_store: Store,
    mentor_headers: Callable[..., dict[str, str]],
    provider: str,
) -> None:
    # Given mentor A asks for a consent URL, and the victim (mentor B) consents with B's account
    a, b = f"sec-a-{uuid.uuid4().hex[:8]}", f"sec-b-{uuid.uuid4().hex[:8]}"
    a_headers, b_headers = mentor_headers(a), mentor_headers(b)
    victim = f"victim-{uuid.uuid4().hex[:8]}@example.com"
    if provider == "google":
        flows.seed_google_account(providers.google, victim)
    else:
        flows.seed_zoom_account(providers.zoom, victim, plan=2)
    url = flows.authorize(api, a_headers, provider)
    back = flows.consent(url)  # B's browser, B's account
    # When B's browser lands on the callback
    landed = flows.callback(api, back)
    # Then nothing is stored yet: the app is sent a single-use pending handle, not "connected"
    q = _query(landed)
    assert landed.startswith(f"{CONNECTIONS_PAGE}?"), landed
    assert q.get("provider") == provider, landed
    assert q.get("pending"), landed
    assert "connected" not in q
    assert _mentor_items(stack_store, a) == []
    parked = _pending_item(stack_store, q["pending"])
    assert parked is not None
    assert parked["mentor_id"] == a
    assert 0 < int(parked["ttl"]) - int(time.time()) <= 600
    # When B's mentor app (B's session) completes it
    resp = api.post(f"/connections/{provider}/complete", headers=b_headers, json={"pending": q["pending"]})
    # Then 403 oauth_mentor_mismatch; nothing is stored for either mentor
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"]["code"] == "oauth_mentor_mismatch"
    assert _mentor_items(stack_store, a) == []
    assert _mentor_items(stack_store, b) == []
    assert _pending_item(stack_store, q["pending"]) is None
    # And the handle is discarded: not even A can use it afterwards, nor B again
    for headers in (a_headers, b_headers):
        again = api.post(f"/connections/{provider}/complete", headers=headers, json={"pending": q["pending"]})
        assert again.status_code == 400, again.text
        assert again.json()["error"]["code"] == "invalid_pending"
    assert _mentor_items(stack_store, a) == []
    assert _mentor_items(stack_store, b) == []
    views = api.get("/connections", headers=a_headers).json()["connections"]
    assert {v["provider"]: v["status"] for v in views}[provider] == "not_connected"
