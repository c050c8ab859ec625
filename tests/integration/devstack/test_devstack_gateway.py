"""The local API Gateway: v2 events, the JWT authorizer and v2 response mapping, over real HTTP."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import devstack_probe_handlers as probe
import httpx
import jwt as pyjwt
import pytest
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model

from devstack.gateway import ApiGateway, GatewayServer, claim_string
from devstack.jwt import LocalIssuer
from devstack.routes import ROUTES, Route

PROBE = "devstack_probe_handlers"
PROBE_ROUTES = [
    Route("GET", "/probe/{thing}/items", "probe", auth=True, module=PROBE),
    Route("POST", "/probe/upload", "probe", auth=False, module=PROBE),
    Route("GET", "/probe/plain", "probe", auth=False, module=PROBE),
    Route("GET", "/probe/string", "probe", auth=False, module=PROBE),
    Route("GET", "/probe/boom", "probe", auth=False, module=PROBE),
    Route("GET", "/probe/malformed", "probe", auth=False, module=PROBE),
    Route("GET", "/probe/binary", "probe", auth=False, module=PROBE),
    Route("GET", "/probe/cookies", "probe", auth=False, module=PROBE),
    Route("ANY", "/probe/greedy/{proxy+}", "probe", auth=False, module=PROBE),
    Route("GET", "/probe/missing", "not_written_yet", auth=False),
]


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> LocalIssuer:
    return LocalIssuer(tmp_path_factory.mktemp("gateway-keys"))


@pytest.fixture(scope="module")
def gateway(issuer: LocalIssuer) -> Iterator[GatewayServer]:
    server = GatewayServer(PROBE_ROUTES, issuer.verify, jwks=issuer.jwks)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(gateway: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        yield http


def test_event_has_api_gateway_v2_shape(client: httpx.Client, issuer: LocalIssuer) -> None:
    # Given a mentor token with a scope and a request with an encoded path, repeated query
    # parameters, duplicate headers and cookies
    token = issuer.issue("mentor-42", scope="read write", plan="pro", beta=True)
    claims = issuer.verify(token)
    headers = [
        ("Authorization", f"Bearer {token}"),
        ("X-Custom", "one"),
        ("X-Custom", "two"),
        ("Cookie", "c1=v1; c2=v2"),
        ("User-Agent", "probe-agent/1.0"),
    ]

    # When the client calls an authorised route
    response = client.get("/probe/a%20b/items?x=1&x=2&y=hello%20world&flag=", headers=headers)

    # Then the handler saw exactly what API Gateway would have sent
    assert response.status_code == 200
    assert response.json() == {"sub": "mentor-42", "routeKey": "GET /probe/{thing}/items"}
    call = probe.calls("http")[-1]
    event = call["event"]
    APIGatewayProxyEventV2Model.model_validate(event)
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /probe/{thing}/items"
    assert event["rawPath"] == "/probe/a%20b/items"
    assert event["rawQueryString"] == "x=1&x=2&y=hello%20world&flag="
    assert event["pathParameters"] == {"thing": "a b"}
    assert event["queryStringParameters"] == {"x": "1,2", "y": "hello world", "flag": ""}
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert all(name == name.lower() for name in event["headers"])
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-custom"] == "one,two"
    assert event["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert event["headers"]["x-forwarded-proto"] == "http"
    assert event["isBase64Encoded"] is False
    assert "body" not in event

    context = event["requestContext"]
    assert context["routeKey"] == event["routeKey"]
    assert context["stage"] == "$default"
    assert context["accountId"] == "123456789012"
    assert context["domainName"] == "127.0.0.1"
    assert context["requestId"] == response.headers["apigw-requestid"]
    assert context["http"] == {
        "method": "GET",
        "path": "/probe/a b/items",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "probe-agent/1.0",
    }
    assert re.fullmatch(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000", context["time"])
    assert abs(context["timeEpoch"] - time.time() * 1000) < 10_000

    jwt = context["authorizer"]["jwt"]
    assert jwt["claims"]["sub"] == "mentor-42"
    assert jwt["claims"]["exp"] == str(claims["exp"])  # claim values arrive as strings
    assert jwt["claims"]["beta"] == "true"
    assert all(isinstance(v, str) for v in jwt["claims"].values())
    assert jwt["scopes"] == ["read", "write"]

    # and the context looks like the Lambda runtime's
    assert call["context"]["function_name"] == "probe"
    assert call["context"]["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:probe"
    assert 0 < call["context"]["remaining_ms"] <= 29_000


def test_token_without_scope_gives_null_scopes(client: httpx.Client, issuer: LocalIssuer) -> None:
    # Given a token without a scope claim
    token = issuer.issue("mentor-7")
    # When it calls an authorised route
    response = client.get("/probe/x/items", headers={"authorization": f"Bearer {token}"})
    # Then the sub reaches the handler and scopes is null
    assert response.json()["sub"] == "mentor-7"
    assert probe.calls("http")[-1]["event"]["requestContext"]["authorizer"]["jwt"]["scopes"] is None


@pytest.mark.parametrize(
    ("content_type", "payload", "base64_expected"),
    [
        ("application/octet-stream", b"\x00\x01binary\xff", True),
        ("application/x-www-form-urlencoded", b"a=1&b=2", True),  # API Gateway base64s forms too
        ("application/json", b'{"a": 1}', False),
        ("text/calendar; charset=utf-8", b"BEGIN:VCALENDAR", False),
        ("application/vnd.api+json", b"{}", False),
    ],
)
def test_body_is_base64_encoded_unless_text(
    client: httpx.Client, content_type: str, payload: bytes, base64_expected: bool
) -> None:
    # Given a body of some content type
    # When it is posted to a public route
    response = client.post("/probe/upload", content=payload, headers={"content-type": content_type})
    # Then the handler gets it as text, or base64 with isBase64Encoded for binary types
    assert response.status_code == 200
    event = probe.calls("http")[-1]["event"]
    APIGatewayProxyEventV2Model.model_validate(event)
    assert event["isBase64Encoded"] is base64_expected
    body = base64.b64decode(event["body"]) if base64_expected else event["body"].encode()
    assert body == payload
    assert "authorizer" not in event["requestContext"]  # public route: no authorizer


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{header}.{payload}.{flipped}"


@pytest.mark.parametrize(
    "make_header",
    [
        pytest.param(lambda i, other: None, id="missing"),
        pytest.param(lambda i, other: "Bearer", id="bearer-only"),
        pytest.param(lambda i, other: "Bearer not-a-jwt", id="garbage"),
        pytest.param(lambda i, other: "Bearer " + _tampered(i.issue("m1")), id="tampered-signature"),
        pytest.param(lambda i, other: "Bearer " + i.issue("m1", ttl_s=-60), id="expired"),
        pytest.param(lambda i, other: "Bearer " + i.issue("m1", aud="someone-else"), id="wrong-audience"),
        pytest.param(lambda i, other: "Bearer " + i.issue("m1", iss="https://evil"), id="wrong-issuer"),
        pytest.param(lambda i, other: "Bearer " + other.issue("m1"), id="foreign-key"),
        pytest.param(
            lambda i, other: "Bearer " + pyjwt.encode({"sub": "m1"}, key=None, algorithm="none"), id="alg-none"
        ),
    ],
)
def test_bad_or_missing_token_is_401_and_handler_not_invoked(
    client: httpx.Client, issuer: LocalIssuer, tmp_path: Path, make_header
) -> None:
    # Given a missing, malformed, tampered, expired, misdirected or foreign token
    other = LocalIssuer(tmp_path)
    header = make_header(issuer, other)
    before = len(probe.calls("http"))
    # When it calls an authorised route
    headers = {"authorization": header} if header is not None else {}
    response = client.get("/probe/x/items", headers=headers)
    # Then API Gateway's own 401 comes back and the function never ran
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}
    assert len(probe.calls("http")) == before


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("GET", "/probe/plain", 200, b'{"hello": "world"}'),
        ("GET", "/probe/string", 200, b"just a string"),
        ("GET", "/probe/binary", 200, b"\x00\x01\xfe\xff"),
        ("GET", "/probe/boom", 500, b'{"message":"Internal Server Error"}'),
        ("GET", "/probe/malformed", 500, b'{"message":"Internal Server Error"}'),
        ("GET", "/probe/missing", 501, b'{"message":"Not Implemented"}'),
        ("GET", "/no/such/route", 404, b'{"message":"Not Found"}'),
        ("DELETE", "/probe/plain", 404, b'{"message":"Not Found"}'),
    ],
)
def test_result_is_mapped_by_v2_rules(client: httpx.Client, method: str, path: str, status: int, body: bytes) -> None:
    # Given a handler returning a plain object, a string, base64 binary, raising, or malformed —
    # or no handler / no route at all
    # When the route is called
    response = client.request(method, path)
    # Then the gateway answers as API Gateway does
    assert response.status_code == status
    assert response.content == body
    if status != 200 or path in ("/probe/plain", "/probe/string"):
        assert response.headers["content-type"] == "application/json"


def test_response_headers_and_cookies(client: httpx.Client) -> None:
    # Given a handler returning headers (one not a string) and cookies
    # When it is called
    response = client.get("/probe/cookies")
    # Then status, headers, one set-cookie per cookie and the body come back
    assert response.status_code == 201
    assert response.headers["x-count"] == "3"
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert response.text == "made"


def test_greedy_route_and_any_method(client: httpx.Client) -> None:
    # Given an ANY route with a greedy variable
    # When a nested path is patched
    response = client.patch("/probe/greedy/a/b/c", content=b"{}", headers={"content-type": "application/json"})
    # Then it matched with the rest of the path as the parameter
    assert response.status_code == 200
    event = probe.calls("http")[-1]["event"]
    assert event["routeKey"] == "ANY /probe/greedy/{proxy+}"
    assert event["pathParameters"] == {"proxy": "a/b/c"}
    assert event["requestContext"]["http"]["method"] == "PATCH"


def test_jwks_is_served_and_verifies_tokens(gateway: GatewayServer, issuer: LocalIssuer) -> None:
    # Given the gateway's JWKS URL
    jwks_client = pyjwt.PyJWKClient(gateway.url + "/.well-known/jwks.json")
    token = issuer.issue("mentor-9")
    # When a token is verified with the served key
    key = jwks_client.get_signing_key_from_jwt(token)
    claims = pyjwt.decode(token, key.key, algorithms=["RS256"], audience=issuer.audience)
    # Then it is the issuer's key
    assert claims["sub"] == "mentor-9"


def test_claims_are_stringified_like_api_gateway() -> None:
    assert claim_string(1700000000) == "1700000000"
    assert claim_string(True) == "true"
    assert claim_string(["a", "b"]) == "[a b]"
    assert claim_string({"k": 1}) == "map[k:1]"
    assert claim_string("s") == "s"


# --- the production route table ------------------------------------------------------------

EXPECTED_ROUTES = {
    ("GET", "/connections", "connections_api", True),
    ("POST", "/connections/{provider}/authorize", "connections_api", True),
    ("POST", "/connections/{provider}/complete", "connections_api", True),
    ("POST", "/connections/apple", "connections_api", True),
    ("GET", "/connections/google/calendars", "connections_api", True),
    ("PUT", "/connections/google/calendar", "connections_api", True),
    ("GET", "/connections/microsoft/calendars", "connections_api", True),
    ("PUT", "/connections/microsoft/calendar", "connections_api", True),
    ("DELETE", "/connections/{provider}", "connections_api", True),
    ("GET", "/mentors/me/busy", "mentors_api", True),
    ("GET", "/mentors/me/feed", "mentors_api", True),
    ("POST", "/mentors/me/feed/rotate", "mentors_api", True),
    ("GET", "/mentors/me/availability", "mentors_api", True),
    ("PUT", "/mentors/me/availability", "mentors_api", True),
    ("GET", "/mentors/{mentorId}/slots", "mentors_api", True),
    ("GET", "/oauth/{provider}/callback", "oauth_callback", False),
    ("POST", "/classes", "classes_api", True),
    ("GET", "/classes/{id}", "classes_api", True),
    ("PATCH", "/classes/{id}/sessions/{sid}", "classes_api", True),
    ("DELETE", "/classes/{id}/sessions/{sid}", "classes_api", True),
    ("POST", "/bookings", "classes_api", True),
    ("POST", "/private-sessions", "classes_api", True),
    ("GET", "/bookings/{id}", "classes_api", False),
    ("POST", "/bookings/{id}/cancel", "classes_api", False),
    ("POST", "/webhooks/stripe", "stripe_webhook", False),
    ("POST", "/webhooks/zoom", "provider_webhooks", False),
    ("POST", "/webhooks/google", "provider_webhooks", False),
    ("POST", "/webhooks/microsoft", "provider_webhooks", False),
    ("GET", "/feeds/{token}", "calendar_feed", False),
}


def test_route_table_lists_every_product_route() -> None:
    # Given the production route table
    # Then it is exactly PRODUCT.md §3, each route with its function and authorizer
    assert {(r.method, r.path, r.function, r.auth) for r in ROUTES} == EXPECTED_ROUTES


@pytest.mark.parametrize(
    ("method", "path", "route_key", "params"),
    [
        ("POST", "/connections/apple", "POST /connections/apple", {}),
        ("POST", "/connections/zoom/authorize", "POST /connections/{provider}/authorize", {"provider": "zoom"}),
        ("DELETE", "/connections/google", "DELETE /connections/{provider}", {"provider": "google"}),
        ("GET", "/connections/google/calendars", "GET /connections/google/calendars", {}),
        ("GET", "/mentors/me/busy", "GET /mentors/me/busy", {}),
        ("POST", "/mentors/me/feed/rotate", "POST /mentors/me/feed/rotate", {}),
        ("GET", "/mentors/m1/slots", "GET /mentors/{mentorId}/slots", {"mentorId": "m1"}),
        ("GET", "/oauth/google/callback", "GET /oauth/{provider}/callback", {"provider": "google"}),
        ("PATCH", "/classes/c1/sessions/s1", "PATCH /classes/{id}/sessions/{sid}", {"id": "c1", "sid": "s1"}),
        ("POST", "/bookings/b1/cancel", "POST /bookings/{id}/cancel", {"id": "b1"}),
        ("GET", "/feeds/abc.ics", "GET /feeds/{token}", {"token": "abc.ics"}),
    ],
)
def test_production_routes_match(method: str, path: str, route_key: str, params: dict[str, str]) -> None:
    gateway = ApiGateway(ROUTES, lambda token: {})
    matched = gateway.match(method, path)
    assert matched is not None
    assert (matched[0].key, matched[1]) == (route_key, params)


@pytest.mark.parametrize(("method", "path"), [("GET", "/connections/"), ("PUT", "/connections"), ("GET", "/feeds")])
def test_production_routes_do_not_match(method: str, path: str) -> None:
    assert ApiGateway(ROUTES, lambda token: {}).match(method, path) is None


@pytest.mark.parametrize("path", ["/feeds/{token}.ics", "/a/{x+}/b", "/a/", "a"])
def test_route_paths_follow_api_gateway_rules(path: str) -> None:
    with pytest.raises(ValueError, match=r"path|segment"):
        Route("GET", path, "f", auth=False)


def test_json_bodies_round_trip(client: httpx.Client) -> None:
    # Given a JSON body with non-ASCII text
    payload = {"name": "Zoë", "n": 1}
    # When it is posted
    client.post("/probe/upload", json=payload)
    # Then the handler reads the same JSON
    assert json.loads(probe.calls("http")[-1]["event"]["body"]) == payload
