"""Regressions found by fuzzing the API (tests/reliability/test_fuzz_api.py): request bodies that used
to crash a function (500) or slip past as something else, answered by ``shared.platform.api`` with a 4xx
in the error envelope — before any domain code runs.

Found: a body nested thousands deep (``RecursionError``), a base64 body that is not UTF-8
(``UnicodeDecodeError``), an integer with thousands of digits (``ValueError``) and multipart without
a boundary (``ValueError``) were all 500s; a form or multipart body was parsed as a form; other
content types got Powertools' own ``{"statusCode": 415, "detail": ...}``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from devstack.gateway import HttpRequest, build_event
from devstack.routes import LambdaContext, Route
from shared.platform.api import MAX_BODY_BYTES, build_resolver, raw_body

app = build_resolver()
handled: list[Any] = []


class Thing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


@app.post("/things")
def create_thing(body: Thing) -> dict[str, Any]:
    handled.append(body)
    return {"name": body.name}


@app.post("/hooks")
def hook() -> dict[str, Any]:
    data = raw_body(app.current_event)
    handled.append(data)
    return {"bytes": len(data)}


THINGS = Route("POST", "/things", "things", auth=False)
HOOKS = Route("POST", "/hooks", "hooks", auth=False)


def call(route: Route, body: bytes, content_type: str | None = "application/json") -> tuple[int, dict[str, Any]]:
    """What API Gateway (the local one's exact v2 event) hands the function, and its answer."""
    headers = [("content-type", content_type)] if content_type else []
    event = build_event(route, {}, HttpRequest("POST", route.path, headers, body), claims=None, api_id="unit")
    result = app.resolve(event, LambdaContext(route.function))
    return result["statusCode"], json.loads(result["body"] or "null")


@pytest.fixture(autouse=True)
def _clean() -> None:
    handled.clear()


def error_of(answer: tuple[int, dict[str, Any]], status: int, code: str) -> dict[str, Any]:
    got_status, body = answer
    assert (got_status, body["error"]["code"]) == (status, code), body
    assert handled == []  # the route never ran
    error: dict[str, Any] = body["error"]
    return error


def test_a_good_body_still_reaches_the_route() -> None:
    """Given a JSON object (with or without a charset, or a +json type), when posted, then the route runs."""
    for content_type in ("application/json", "application/json; charset=utf-8", "application/vnd.api+json", None):
        assert call(THINGS, b'{"name": "yoga"}', content_type) == (200, {"name": "yoga"})


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        (b'{"a":' * 20_000 + b"1" + b"}" * 20_000, "nested too deeply"),
        (b'{"name": "\xff"}', "not valid UTF-8"),
        (b'{"name": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b'{"name": NaN}', "not valid JSON"),
        (b'{"name": ', "not valid JSON"),
        (b"[1, 2]", "not an array"),
        (b"null", "not null"),
        (b'"yoga"', "not a string"),
        (b"7", "not a number"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_400_not_500(body: bytes, says: str) -> None:
    """Given a body that crashed Powertools' reader or is not an object, when posted as JSON, then the
    answer is 400 ``invalid_request`` naming the body, and the route never runs."""
    error = error_of(call(THINGS, body), 400, "invalid_request")
    assert says in error["message"]
    assert error["fields"] == [{"field": "body", "message": error["message"]}]


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "text/plain"],
)
def test_a_body_of_another_content_type_is_415_in_the_envelope(content_type: str) -> None:
    """Given a JSON route, when a form, multipart (with or without a boundary) or text body arrives, then
    it is 415 ``unsupported_media_type`` in the envelope (it was a 500, a parsed form, or Powertools' body)."""
    error_of(call(THINGS, b"name=yoga", content_type), 415, "unsupported_media_type")


@pytest.mark.parametrize("route", [THINGS, HOOKS])
def test_a_body_over_the_limit_is_413_on_every_route(route: Route) -> None:
    """Given any route (JSON or raw webhook), when a body one byte over the limit arrives (text or
    base64), then it is 413 ``payload_too_large`` and the route never runs; at the limit it is read."""
    over = b'{"name": "' + b"x" * (MAX_BODY_BYTES - 11) + b'"}'
    assert len(over) == MAX_BODY_BYTES + 1
    for content_type in ("application/json", "application/octet-stream"):
        error = error_of(call(route, over, content_type), 413, "payload_too_large")
        assert error["limitBytes"] == MAX_BODY_BYTES
    assert call(HOOKS, over[:-1], "application/octet-stream") == (200, {"bytes": MAX_BODY_BYTES})


def test_webhook_routes_still_take_any_content_type_byte_exact() -> None:
    """Given a raw-body route, when bytes that are not JSON (nor UTF-8) arrive, then the route gets them."""
    assert call(HOOKS, b"\xff\x00not json", "application/octet-stream") == (200, {"bytes": 10})
    assert handled == [b"\xff\x00not json"]
