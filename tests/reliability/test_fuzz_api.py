"""Bad input (issue 8): the HTTP API fuzzed from its own OpenAPI document, through the local gateway.

* **schemathesis** generates requests for every operation of ``docs/openapi.json`` — valid and
  invalid parameters and bodies (``mode: all``), the coverage phase's boundary values, undeclared
  methods and missing / broken credentials — with a valid mentor JWT on the mentor routes, the
  platform's JWT on the platform routes (``POST /bookings``) and, now and then, the ids of a real
  class, session, booking and feed so the requests reach past the 404s.
  Every answer must be: no 5xx; no stack trace, Python traceback or exception class name; JSON in
  the error envelope for a 4xx (or API Gateway's own ``{"message": ...}`` where only the gateway
  answers); and schemathesis' ``not_a_server_error``, ``status_code_conformance``,
  ``content_type_conformance`` and ``response_schema_conformance`` checks against the document.
* The mentor routes get the same fuzzed requests **without** a valid token: 401 from the gateway.
* Every operation is fuzzed again **with the platform's token** (PRODUCT.md §2.9): a platform route
  answers as documented, a mentor route 403 ``insufficient_scope``, a public one as documented.
* Explicit cases: bodies over the limit (413), bodies that are not a JSON object, not JSON, not UTF-8
  or nested too deep (400 ``invalid_request``), other content types (415), and random bodies and
  headers on the signed webhooks — each refused with nothing written to the table.

Deterministic (fixed seed, ``derandomize``) and bounded: the file runs in well under a minute.
schemathesis builds the requests; they are sent with httpx because schemathesis' requests transport
counts connections in urllib3's pool manager, which ``urllib3-future`` (pulled in by caldav's
niquests) replaces with an object it cannot iterate.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from classes_support import in_person
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.gateway import MAX_BODY_BYTES as GATEWAY_MAX_BODY_BYTES
from devstack.stack import LocalStack
from shared.platform.api import MAX_BODY_BYTES

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
DOCUMENT: dict[str, Any] = json.loads(DOC.read_text())
OPERATIONS = {f"{m.upper()} {p}": op for p, item in DOCUMENT["paths"].items() for m, op in item.items()}
SECURED = sorted(label for label, op in OPERATIONS.items() if op.get("security"))
#: Platform routes (security ``platformJWT``): the platform's token, never a mentor's.
PLATFORM_OPS = frozenset(label for label, op in OPERATIONS.items() if op.get("security") == [{"platformJWT": []}])
MENTOR_OPS = frozenset(SECURED) - PLATFORM_OPS
PLATFORM_EXAMPLES = 12

#: Examples per operation in the fuzzing phase (the coverage phase adds its own boundary cases).
FUZZ_EXAMPLES = 40
#: Examples per mentor route for the requests without a valid token.
NO_AUTH_EXAMPLES = 6
WEBHOOK_EXAMPLES = 25
SEED = 8_2026

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance")


def _config(max_examples: int, *, coverage: bool) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"mode": "all", "deterministic": True, "max-examples": max_examples},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "phases": {"coverage": {"enabled": coverage}, "stateful": {"enabled": False}},
        }
    )


schema = schemathesis.openapi.from_path(DOC, config=_config(FUZZ_EXAMPLES, coverage=True))
unauthenticated = schemathesis.openapi.from_path(DOC, config=_config(NO_AUTH_EXAMPLES, coverage=False)).include(
    name=SECURED
)


def _bounded(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=False,
        # The fixtures (an HTTP client, the fuzz mentor's ids) are meant to be shared by the examples.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )


# --- what every answer must look like ---------------------------------------------------------------

#: What a leaked stack trace looks like: the traceback header, a frame line, an exception class name,
#: installed-package paths or pydantic's error URL.
LEAK = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]*\.py\", line \d+|\b[A-Z]\w*(?:Error|Exception)\b"
    r"|site-packages|errors\.pydantic\.dev"
)
CODE = re.compile(r"^[a-z][a-z0-9_]*$")
#: The answers API Gateway makes itself (no function runs, so not the error envelope).
GATEWAY_UNAUTHORIZED = {"message": "Unauthorized"}
GATEWAY_NOT_FOUND = {"message": "Not Found"}


def assert_no_leak(response: httpx.Response) -> None:
    """No stack trace, exception class or package path in the answer, save what the request itself sent.

    A created class echoes its title: a fuzzed title ``"AError"`` coming back is not a leak.
    """
    sent = response.request.content.decode("utf-8", "replace") + str(response.request.url)
    for found in LEAK.finditer(response.text):
        assert found.group(0) in sent, (
            f"{response.request.method} {response.request.url.path} leaked {found.group(0)!r}"
        )


def assert_error(response: httpx.Response, status: int | None = None, code: str | None = None) -> dict[str, Any]:
    """A 4xx in the contract's envelope (with the given status / code); its ``error`` object."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if status is not None:
        assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert CODE.match(str(error.get("code"))), error
    assert isinstance(error.get("message"), str), error
    assert error["message"], error
    if code is not None:
        assert error["code"] == code, error
    assert_no_leak(response)
    return error


def assert_sane(case: Any, response: httpx.Response) -> None:
    """No 5xx, no leak, and every 4xx in the envelope — or the gateway's own 401 / 404 where only it answers."""
    status = response.status_code
    assert status < 500, f"{case.operation.label}: {status} {response.text[:300]}"
    assert_no_leak(response)
    if status < 400:
        return
    body = response.json()
    if body == GATEWAY_UNAUTHORIZED:
        assert status == 401, case.operation.label
        assert case.operation.label in SECURED, case.operation.label
    elif body == GATEWAY_NOT_FOUND:  # a probe with a method the route does not have
        assert status == 404, case.operation.label
        assert response.request.method != case.method.upper(), case.operation.label
    else:
        assert_error(response)


def request_for(api: httpx.Client, case: Any, headers: dict[str, str] | None = None) -> httpx.Request:
    """The request schemathesis built for ``case``, as an httpx request (see the module docstring)."""
    kwargs = case.as_transport_kwargs(base_url=str(api.base_url).rstrip("/"), headers=headers)
    content = json.dumps(kwargs["json"]).encode() if "json" in kwargs else kwargs.get("data")
    return api.build_request(
        kwargs["method"], kwargs["url"], params=kwargs.get("params"), headers=kwargs["headers"], content=content
    )


# --- the fuzz mentor's world ----------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """A mentor with a class, its sessions, a booking and a feed: real values the fuzzer can aim at."""

    mentor: str
    headers: dict[str, str]
    path: dict[str, list[str]]  # path parameter name → real values
    query: dict[str, list[str]]  # query parameter name → real values
    platform: dict[str, str]  # the platform backend's bearer token

    def for_route(self, method: str, path: str) -> dict[str, str]:
        """The credential a route takes: the platform's on platform routes, else the mentor's."""
        return self.platform if f"{method} {path}" in PLATFORM_OPS else self.headers


@pytest.fixture(scope="module")
def world(local_stack: LocalStack) -> World:
    mentor = f"fuzz-{uuid.uuid4().hex[:10]}"
    headers = {"authorization": f"Bearer {local_stack.token(mentor)}"}
    platform = {"authorization": f"Bearer {local_stack.platform_token()}"}
    with httpx.Client(base_url=local_stack.api_url, timeout=10) as api:
        created = api.post("/classes", json=in_person(title="Fuzzed flow"), headers=headers)
        assert created.status_code == 201, created.text
        klass = created.json()
        sessions = [s["sessionId"] for s in klass["sessions"]]
        booked = api.post(
            "/bookings",
            json={
                "sessionId": sessions[0],
                "studentEmail": "fuzz@example.test",
                "studentName": "Fuzz",
                "priceAmount": 4900,
                "currency": "USD",
            },
            headers=platform,
        )
        assert booked.status_code == 201, booked.text
        feed = api.get("/mentors/me/feed", headers=headers)
        assert feed.status_code == 200, feed.text
    return World(
        mentor=mentor,
        headers=headers,
        path={
            "class_id": [klass["classId"]],
            "session_id": sessions,
            "booking_id": [booked.json()["bookingId"]],
            "provider": ["google", "zoom", "apple"],
            "token": [feed.json()["url"].rsplit("/", 1)[1]],
        },
        query={"token": [booked.json()["bookingToken"]]},
        platform=platform,
    )


def aim(case: Any, data: st.DataObject, world: World) -> None:
    """Now and then, swap a generated id for a real one, or add the real booking token the generator
    left out, so that reads, moves and cancels find something instead of answering 404."""
    for name, values in world.path.items():
        if name in (case.path_parameters or {}) and data.draw(st.booleans(), label=f"real {name}"):
            case.path_parameters[name] = data.draw(st.sampled_from(values), label=name)
    declared = {p["name"] for p in case.operation.definition.raw.get("parameters", []) if p.get("in") == "query"}
    for name, values in world.query.items():
        if name in declared and data.draw(st.booleans(), label=f"real {name}"):
            case.query = {**(case.query or {}), name: data.draw(st.sampled_from(values), label=name)}


def table_count(local_stack: LocalStack) -> int:
    """Every item in the stack's table (after the queues are drained: no worker is still writing)."""
    local_stack.drain()
    client = local_stack.client("dynamodb")
    total, start = 0, None
    while True:
        page = client.scan(
            TableName=os.environ["TABLE_NAME"], Select="COUNT", **({"ExclusiveStartKey": start} if start else {})
        )
        total += page["Count"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return total


@pytest.fixture
def nothing_written(local_stack: LocalStack) -> Callable[[], None]:
    """``nothing_written()`` asserts the table holds exactly the items it held when the test began."""
    before = table_count(local_stack)

    def check() -> None:
        assert table_count(local_stack) == before

    return check


# --- the schemathesis fuzz --------------------------------------------------------------------------------


def test_the_leak_check_tells_an_echoed_value_from_a_leak() -> None:
    """A fuzzed class title ``"AError"`` that the 201 echoes is not a leak (it failed a run once)."""
    request = httpx.Request("POST", "http://api.test/classes", json={"title": "AError"})
    assert_no_leak(httpx.Response(201, json={"title": "AError"}, request=request))
    with pytest.raises(AssertionError, match="leaked 'KeyError'"):
        assert_no_leak(httpx.Response(500, text="KeyError: 'title'", request=request))


def test_the_fuzz_covers_every_documented_operation() -> None:
    """Given docs/openapi.json, when schemathesis loads it, then every documented operation (all of
    them, none refused as invalid) is fuzzed, and the mentor routes are the ones with a security scheme."""
    loaded = [result.ok().label for result in schema.get_all_operations()]
    assert sorted(loaded) == sorted(OPERATIONS)
    assert len(loaded) >= 21
    assert set(SECURED) < set(OPERATIONS)
    assert "POST /classes" in SECURED
    assert "POST /webhooks/stripe" not in SECURED


@schema.parametrize()
@schema.given(data=st.data())
@_bounded(FUZZ_EXAMPLES)
def test_every_operation_answers_fuzzed_requests_with_a_documented_answer(
    case: Any, data: st.DataObject, api: httpx.Client, world: World
) -> None:
    """Given one documented operation, fuzzed by schemathesis (a valid mentor JWT where the route needs
    one, sometimes real ids), when each request goes through the local gateway, then no answer is a 5xx
    or leaks a stack trace, every 4xx is the JSON error envelope (or the gateway's own 401 / 404), and the
    status code, content type and body conform to the document."""
    aim(case, data, world)
    label = case.operation.label
    if label in PLATFORM_OPS:
        credential: dict[str, str] | None = world.platform
    elif label in SECURED:
        credential = world.headers
    else:
        # The booking routes also take the mentor's or the platform's JWT without the gateway's
        # authorizer: sometimes send one of them.
        credential = data.draw(st.sampled_from([None, world.headers, world.platform]), label="JWT")
    response = api.send(request_for(api, case, credential))
    assert_sane(case, response)
    case.validate_response(response, headers=dict(response.request.headers))


@schema.parametrize()
@schema.given(data=st.data())
@_bounded(PLATFORM_EXAMPLES)
def test_every_operation_answers_the_platforms_token_as_its_caller_rules_say(
    case: Any, data: st.DataObject, api: httpx.Client, world: World
) -> None:
    """Given one documented operation fuzzed by schemathesis, when every request carries the platform
    backend's token (PRODUCT.md §2.9), then a mentor route answers 403 ``insufficient_scope`` (a platform
    token names no mentor), and every other route answers as documented — no 5xx, no stack trace."""
    aim(case, data, world)
    response = api.send(request_for(api, case, world.platform))
    assert_sane(case, response)
    # (schemathesis' coverage phase also sends requests whose credentials it removed or broke: 401)
    sent_platform = response.request.headers.get("authorization") == world.platform["authorization"]
    if case.operation.label in MENTOR_OPS and sent_platform:
        assert response.status_code == 403, (case.operation.label, response.status_code, response.text[:300])
        assert response.json()["error"]["code"] == "insufficient_scope"
    case.validate_response(response, headers=dict(response.request.headers))


BAD_CREDENTIALS = ("none", "not-a-jwt", "expired", "wrong-audience", "wrong-issuer", "tampered")


def _authorization(local_stack: LocalStack, mentor: str, kind: str) -> dict[str, str]:
    token = {
        "none": None,
        "not-a-jwt": "not-a-jwt",
        "expired": local_stack.token(mentor, ttl_s=-3600),
        "wrong-audience": local_stack.token(mentor, aud="another-api"),
        "wrong-issuer": local_stack.token(mentor, iss="https://issuer.example.test"),
        "tampered": local_stack.token(mentor)[:-4] + "AAAA",
    }[kind]
    return {} if token is None else {"authorization": f"Bearer {token}"}


@unauthenticated.parametrize()
@unauthenticated.given(credential=st.sampled_from(BAD_CREDENTIALS))
@_bounded(NO_AUTH_EXAMPLES)
def test_mentor_routes_answer_fuzzed_requests_without_a_valid_token_with_401(
    case: Any, credential: str, api: httpx.Client, local_stack: LocalStack, world: World
) -> None:
    """Given a mentor route fuzzed by schemathesis, when the request carries no token, a malformed one,
    an expired one, one for another audience or issuer, or one whose signature was tampered with, then
    the gateway answers 401 ``{"message": "Unauthorized"}`` itself (the function never runs)."""
    request = request_for(api, case)
    request.headers.pop("authorization", None)  # whatever schemathesis put there, ours replaces it
    request.headers.update(_authorization(local_stack, world.mentor, credential))
    response = api.send(request)
    assert response.status_code == 401, (credential, response.text[:300])
    assert response.json() == GATEWAY_UNAUTHORIZED
    case.validate_response(response, headers=dict(request.headers))


# --- explicit bad bodies ----------------------------------------------------------------------------------

JSON_ROUTES = [
    ("POST", "/classes"),
    ("POST", "/bookings"),
    ("POST", "/connections/apple"),
    ("PUT", "/connections/google/calendar"),
    ("PATCH", "/classes/{class_id}/sessions/{session_id}"),
    ("PUT", "/mentors/me/availability"),
]
WEBHOOKS = [("POST", "/webhooks/stripe"), ("POST", "/webhooks/zoom"), ("POST", "/webhooks/google")]


def _url(world: World, path: str) -> str:
    return path.format(class_id=world.path["class_id"][0], session_id=world.path["session_id"][1])


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES + WEBHOOKS)
def test_a_body_over_the_limit_is_refused_with_413_and_nothing_is_written(
    method: str, path: str, api: httpx.Client, world: World, nothing_written: Callable[[], None]
) -> None:
    """Given a 1 MiB JSON object (well-formed, API Gateway would pass it: its limit is 10 MB), when it is
    sent to a JSON route or a webhook, then it is refused with 413 ``payload_too_large`` naming the limit
    before it is parsed or its signature checked, and nothing is written."""
    body = json.dumps({"title": "x" * (1024 * 1024), "sessionId": world.path["session_id"][0]}).encode()
    response = api.request(
        method,
        _url(world, path),
        content=body,
        headers={**world.for_route(method, path), "content-type": "application/json"},
    )
    error = assert_error(response, 413, "payload_too_large")
    assert error["limitBytes"] == MAX_BODY_BYTES
    nothing_written()


def test_the_body_limit_is_exact(api: httpx.Client, world: World) -> None:
    """Given bodies of exactly the limit and one byte over, when they are posted, then the first is read
    (and refused for what it says: 400) and only the second is 413."""
    at_limit = b'{"title": "' + b"x" * (MAX_BODY_BYTES - 13) + b'"}'
    assert len(at_limit) == MAX_BODY_BYTES
    headers = {**world.headers, "content-type": "application/json"}
    assert_error(api.post("/classes", content=at_limit, headers=headers), 400, "invalid_request")
    assert_error(api.post("/classes", content=at_limit + b" ", headers=headers), 413, "payload_too_large")


def test_a_body_over_api_gateways_own_limit_is_refused_by_the_gateway(
    api: httpx.Client, world: World, nothing_written: Callable[[], None]
) -> None:
    """Given a body over API Gateway's 10 MB payload limit, when it is posted, then the gateway itself
    answers 413 ``{"message": "Request Entity Too Large"}`` (the function never runs)."""
    body = b"[" + b"0," * (GATEWAY_MAX_BODY_BYTES // 2) + b"0]"
    response = api.post("/classes", content=body, headers={**world.headers, "content-type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"message": "Request Entity Too Large"}
    nothing_written()


DEPTH = 20_000
BAD_JSON: dict[str, bytes] = {
    "truncated": b'{"title": "Morning flow", ',
    "not json": b"title=Morning flow",
    "single quotes": b"{'title': 'Morning flow'}",
    "array": b'[{"title": "Morning flow"}]',
    "string": b'"Morning flow"',
    "null": b"null",
    "number": b"42",
    "boolean": b"true",
    "NaN": b'{"durationMinutes": NaN}',
    "Infinity": b'{"capacity": Infinity}',
    "5000-digit integer": b'{"capacity": ' + b"9" * 5000 + b"}",
    "deeply nested object": b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
    "deeply nested array": b"[" * DEPTH + b"]" * DEPTH,
    "invalid UTF-8": b'{"title": "Morning \xff\xfe flow"}',
    "UTF-16": json.dumps({"title": "Morning flow"}).encode("utf-16"),
    "lone surrogate": b'{"title": "\xed\xa0\x80"}',
}


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
def test_a_body_that_is_not_a_json_object_is_400_invalid_request_and_nothing_is_written(
    method: str, path: str, api: httpx.Client, world: World, stack_counts: Callable[[], int]
) -> None:
    """Given a JSON route and bodies that are not a JSON object (broken, an array / string / null /
    number, NaN, a huge integer, nested 20,000 deep, UTF-16, or not UTF-8), when each is sent as
    ``application/json``, then every answer is 400 ``invalid_request`` about the body and nothing is written."""
    before = stack_counts()
    headers = {**world.for_route(method, path), "content-type": "application/json; charset=utf-8"}
    for kind, body in BAD_JSON.items():
        response = api.request(method, _url(world, path), content=body, headers=headers)
        error = assert_error(response, 400, "invalid_request")
        assert error["fields"][0]["field"] == "body", (kind, error)
    assert stack_counts() == before


OTHER_TYPES: dict[str, tuple[str, bytes]] = {
    "text/plain": ("text/plain", b'{"title": "Morning flow"}'),
    "form": ("application/x-www-form-urlencoded", b"title=Morning+flow&format=in_person"),
    "multipart without boundary": ("multipart/form-data", b"--x\r\n\r\n"),
    "multipart": (
        "multipart/form-data; boundary=x",
        b'--x\r\nContent-Disposition: form-data; name="title"\r\n\r\nMorning flow\r\n--x--\r\n',
    ),
    "xml": ("application/xml", b"<class><title>Morning flow</title></class>"),
    "octet-stream": ("application/octet-stream", json.dumps(in_person()).encode()),
}


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
def test_a_body_that_is_not_json_by_its_content_type_is_415_and_nothing_is_written(
    method: str, path: str, api: httpx.Client, world: World, stack_counts: Callable[[], int]
) -> None:
    """Given a JSON route and bodies sent as another content type (text, a form, multipart with or
    without a boundary, XML, bytes) — even bytes that are a valid class — when each is sent, then every
    answer is 415 ``unsupported_media_type`` and nothing is written."""
    before = stack_counts()
    for kind, (content_type, body) in OTHER_TYPES.items():
        headers = {**world.for_route(method, path), "content-type": content_type}
        response = api.request(method, _url(world, path), content=body, headers=headers)
        assert response.status_code == 415, (kind, response.text[:300])
        assert_error(response, 415, "unsupported_media_type")
    assert stack_counts() == before


@pytest.fixture
def stack_counts(local_stack: LocalStack, world: World) -> Callable[[], int]:
    """The items a refused body could have created: the fuzz mentor's own partition, the sessions and
    bookings of its class, and the class list (cheap enough to read around every request)."""
    client = local_stack.client("dynamodb")
    table = os.environ["TABLE_NAME"]

    def count(key: str, value: str, index: str | None = None) -> int:
        extra = {"IndexName": index} if index else {}
        page = client.query(
            TableName=table,
            KeyConditionExpression="#k = :v",
            ExpressionAttributeNames={"#k": key},
            ExpressionAttributeValues={":v": {"S": value}},
            Select="COUNT",
            **extra,
        )
        return int(page["Count"])

    def total() -> int:
        local_stack.drain()
        return (
            count("PK", f"MENTOR#{world.mentor}")
            + count("PK", f"CLASS#{world.path['class_id'][0]}")
            + count("GSI1PK", f"CLASSES#{world.mentor}", "GSI1")
            + sum(count("GSI1PK", f"BOOKINGS#{sid}", "GSI1") for sid in world.path["session_id"])
        )

    return total


# --- the signed webhooks ------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
webhook_bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"id": st.text(max_size=12), "type": st.sampled_from(["payment_intent.succeeded", "charge.refunded"])},
        optional={"event": st.sampled_from(["endpoint.url_validation", "app_deauthorized"]), "payload": json_values},
    ).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
)
header_values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)
webhook_headers = st.dictionaries(
    st.sampled_from(
        [
            "stripe-signature",
            "x-zm-signature",
            "x-zm-request-timestamp",
            "x-goog-channel-id",
            "x-goog-channel-token",
            "x-goog-resource-id",
            "x-goog-resource-state",
            "x-goog-message-number",
            "content-type",
        ]
    ),
    header_values,
    max_size=6,
)


@pytest.mark.parametrize(("method", "path"), WEBHOOKS)
def test_webhooks_refuse_random_unsigned_requests_and_write_nothing(
    method: str, path: str, api: httpx.Client, nothing_written: Callable[[], None]
) -> None:
    """Given a signed webhook and random bodies (JSON values, event-shaped objects, raw bytes) with
    random signature / channel headers, when they are posted, then each is refused with a 4xx in the
    envelope (never a 5xx, never a trace) and nothing is written."""
    seen: set[str] = set()

    @given(body=webhook_bodies, headers=webhook_headers)
    @_bounded(WEBHOOK_EXAMPLES)
    def post(body: bytes, headers: dict[str, str]) -> None:
        response = api.request(method, path, content=body, headers=headers)
        seen.add(assert_error(response)["code"])

    post()
    assert seen, "no request was sent"
    nothing_written()
