"""Regressions found by fuzzing the API through the local gateway (tests/reliability/test_fuzz_api.py).

* A method http.server has no ``do_`` handler for (TRACE, QUERY, …) got its 501 HTML page; API
  Gateway answers every unrouted request with ``404 {"message":"Not Found"}``.
* A text-typed body whose bytes are not UTF-8 reached the function with the bad bytes replaced by
  U+FFFD, so it could be stored; now it arrives base64-encoded, byte-exact, and the function refuses it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.gateway import GatewayServer, HttpRequest, build_event
from devstack.routes import Route

ROUTE = Route("POST", "/things", "things", auth=False)


def _refuse(token: str) -> dict[str, Any]:
    raise ValueError("no tokens here")


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayServer]:
    server = GatewayServer([], _refuse)
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "PROPFIND", "BREW"])
def test_any_method_gets_api_gateways_404_not_501_html(gateway: GatewayServer, method: str) -> None:
    """Given the local gateway, when a request uses a method no route has (one http.server knows no
    handler for), then the answer is API Gateway's 404 JSON, not http.server's 501 page."""
    with httpx.Client(base_url=gateway.url, timeout=5) as client:
        response = client.request(method, "/things")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"message": "Not Found"}


@pytest.mark.parametrize("content_type", ["application/json", "text/plain; charset=utf-8"])
def test_a_text_body_that_is_not_utf8_arrives_base64_byte_exact(content_type: str) -> None:
    """Given a text content type and bytes that are not UTF-8, when the event is built, then the body is
    base64 with ``isBase64Encoded`` (the exact bytes), not text with U+FFFD in place of the bad bytes."""
    body = b'{"title": "Morning \xff\xfe flow"}'
    request = HttpRequest("POST", "/things", [("content-type", content_type)], body)
    event = build_event(ROUTE, {}, request, claims=None, api_id="unit")
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


def test_a_utf8_text_body_still_arrives_as_text() -> None:
    """Given valid UTF-8 JSON (non-ASCII too), when the event is built, then the body is text as before."""
    body = '{"title": "Cours de Zoë — 東京"}'.encode()
    event = build_event(
        ROUTE,
        {},
        HttpRequest("POST", "/things", [("content-type", "application/json")], body),
        claims=None,
        api_id="unit",
    )
    assert event["isBase64Encoded"] is False
    assert event["body"].encode() == body
