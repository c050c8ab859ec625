"""Every route of PRODUCT.md §3 / devstack.routes.ROUTES is in the template, on the right function,
behind the JWT authorizer unless it is one of the documented public routes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from contract_support import pending_path
from infra_support import Synth, function_names, refs

from devstack.routes import ROUTES, Route
from infra.constructs.api import PUBLIC_REASONS

#: PRODUCT.md §3, one line per concrete request: (method, path, who). "mentor" = JWT authorizer;
#: "platform" = JWT authorizer + authorizationScopes [the platform scope] (PRODUCT.md §2.9);
#: "public" = no authorizer (the handler authenticates: state, signature, token). "platform, mentor
#: or booking token" routes are public at the gateway (the handler verifies the JWT itself).
PRODUCT_ROUTES: list[tuple[str, str, str]] = [
    ("GET", "/connections", "mentor"),
    ("POST", "/connections/google/authorize", "mentor"),
    ("POST", "/connections/zoom/authorize", "mentor"),
    ("POST", "/connections/google/complete", "mentor"),
    ("POST", "/connections/zoom/complete", "mentor"),
    ("GET", "/oauth/google/callback", "public"),
    ("GET", "/oauth/zoom/callback", "public"),
    ("POST", "/connections/microsoft/authorize", "mentor"),
    ("POST", "/connections/microsoft/complete", "mentor"),
    ("GET", "/oauth/microsoft/callback", "public"),
    ("POST", "/connections/apple", "mentor"),
    ("GET", "/connections/google/calendars", "mentor"),
    ("PUT", "/connections/google/calendar", "mentor"),
    ("GET", "/connections/microsoft/calendars", "mentor"),
    ("PUT", "/connections/microsoft/calendar", "mentor"),
    ("DELETE", "/connections/microsoft", "mentor"),
    ("DELETE", "/connections/google", "mentor"),
    ("DELETE", "/connections/zoom", "mentor"),
    ("DELETE", "/connections/apple", "mentor"),
    ("POST", "/classes", "mentor"),
    ("GET", "/classes/c1", "mentor"),
    ("PATCH", "/classes/c1/sessions/s1", "mentor"),
    ("DELETE", "/classes/c1/sessions/s1", "mentor"),
    ("POST", "/bookings", "platform"),
    ("POST", "/private-sessions", "platform"),
    ("GET", "/bookings/b1", "public"),
    ("POST", "/bookings/b1/cancel", "public"),
    ("GET", "/mentors/me/busy", "mentor"),
    ("GET", "/mentors/me/feed", "mentor"),
    ("POST", "/mentors/me/feed/rotate", "mentor"),
    ("GET", "/mentors/me/availability", "mentor"),
    ("PUT", "/mentors/me/availability", "mentor"),
    ("GET", "/mentors/m1/slots", "platform"),
    ("POST", "/webhooks/stripe", "public"),
    ("POST", "/webhooks/zoom", "public"),
    ("POST", "/webhooks/google", "public"),
    ("POST", "/webhooks/microsoft", "public"),
    ("GET", "/feeds/0123456789abcdef0123456789abcdef.ics", "public"),
]
PRODUCT_MD = Path(__file__).resolve().parents[3] / "shared" / "PRODUCT.md"


def _routes(synth: Synth) -> dict[str, dict[str, Any]]:
    return {r["Properties"]["RouteKey"]: r["Properties"] for r in synth.of_type("AWS::ApiGatewayV2::Route").values()}


def _template_route(method: str, path: str) -> Route:
    """The ROUTES entry API Gateway would pick for a concrete request (most specific match)."""
    candidates = [r for r in ROUTES if r.method in (method, "ANY") and r.match(path) is not None]
    assert candidates, f"no route for {method} {path}"
    return min(candidates, key=lambda r: r.specificity())


def _jwt_authorizer_id(synth: Synth) -> str:
    ((authorizer_id, authorizer),) = synth.of_type("AWS::ApiGatewayV2::Authorizer").items()
    props = authorizer["Properties"]
    assert props["AuthorizerType"] == "JWT"
    assert props["JwtConfiguration"] == {"Issuer": "https://auth.mentors.test/", "Audience": ["mentor-app", "platform"]}
    assert props["IdentitySource"] == ["$request.header.Authorization"]
    return authorizer_id


def _function_of_route(synth: Synth, props: dict[str, Any]) -> str:
    (integration_id,) = refs(props["Target"])
    integration = synth.resources[integration_id]["Properties"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["PayloadFormatVersion"] == "2.0"
    (function_id,) = refs(integration["IntegrationUri"])
    by_id = {v: k for k, v in function_names(synth).items()}
    return by_id[function_id]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.key)
def test_every_local_route_is_deployed_on_its_function_with_its_authorizer(synth: Synth, route: Route) -> None:
    # Given the local wiring table / When looking up its route key in the template
    props = _routes(synth).get(route.key)
    assert props is not None, f"{route.key} missing from the template"
    # Then it targets the same function
    assert _function_of_route(synth, props) == route.function
    # And it is behind the JWT authorizer exactly when the local gateway requires a JWT
    if route.auth:
        assert props["AuthorizationType"] == "JWT"
        assert refs(props["AuthorizerId"]) == {_jwt_authorizer_id(synth)}
    else:
        assert props["AuthorizationType"] == "NONE"
        assert "AuthorizerId" not in props
    # And a platform route requires the platform scope; no other route requires any scope
    if route.platform:
        assert props["AuthorizationScopes"] == ["platform"]
    else:
        assert "AuthorizationScopes" not in props


def test_template_has_no_route_the_local_table_lacks(synth: Synth) -> None:
    assert set(_routes(synth)) == {r.key for r in ROUTES}


@pytest.mark.parametrize(("method", "path", "who"), PRODUCT_ROUTES, ids=lambda v: str(v))
def test_every_product_route_is_served_with_the_right_authorizer(
    synth: Synth, method: str, path: str, who: str
) -> None:
    # Given a concrete request of PRODUCT.md §3 / When API Gateway matches it
    route = _template_route(method, path)
    props = _routes(synth)[route.key]
    # Then it has the authorizer (and the scope) the contract asks for
    assert props["AuthorizationType"] == ("JWT" if who in ("mentor", "platform") else "NONE"), route.key
    assert props.get("AuthorizationScopes") == (["platform"] if who == "platform" else None), route.key
    assert route.who == who, route.key


def test_public_routes_are_exactly_callbacks_webhooks_feed_and_booking_token_routes(synth: Synth) -> None:
    public = {key for key, props in _routes(synth).items() if props["AuthorizationType"] == "NONE"}
    assert public == {
        "GET /oauth/{provider}/callback",
        "POST /webhooks/stripe",
        "POST /webhooks/zoom",
        "POST /webhooks/google",
        "POST /webhooks/microsoft",
        "GET /feeds/{token}",
        "GET /bookings/{id}",
        "POST /bookings/{id}/cancel",
    }
    # And each carries a cdk-nag APIG4 suppression whose reason is the function's documented one
    for res in synth.of_type("AWS::ApiGatewayV2::Route").values():
        if res["Properties"]["AuthorizationType"] == "NONE":
            (rule,) = res["Metadata"]["cdk_nag"]["rules_to_suppress"]
            assert rule["id"] == "AwsSolutions-APIG4"
            assert rule["reason"] in PUBLIC_REASONS.values()


def test_product_md_routes_are_all_listed_here() -> None:
    # Given PRODUCT.md beside the repository (CI has it) / Then its §3 table names no route this test misses
    if not PRODUCT_MD.is_file():
        pytest.skip(f"{PRODUCT_MD} not present")
    text = PRODUCT_MD.read_text()
    section = text[text.index("## 3. HTTP API") : text.index("## 4.")]
    named = set(re.findall(r"`(?:GET|POST|PUT|PATCH|DELETE) (/[^`\[ ]*)", section))
    named |= set(re.findall(r"`(/webhooks/[a-z]+)`", section))
    concrete = {p for _, p, _ in PRODUCT_ROUTES}
    for path in named:
        alternatives = re.search(r"\{([a-z]+(?:,[a-z]+)+)\}", path)
        expanded = (
            [path.replace(alternatives.group(0), a) for a in alternatives.group(1).split(",")]
            if alternatives
            else [path]
        )
        for one in expanded:
            if pending_path(one):  # still to be built (tests/contract_support.py): no route may exist yet
                assert not any(r.path == one for r in ROUTES), f"{one} is routed now: drop it from PENDING"
                continue
            pattern = re.escape(one).replace(r"\{provider\}", "[a-z]+")
            pattern = re.sub(r"\\\{[a-zA-Z]+\\\}", "[^/]+", pattern).replace("…", ".*")
            assert any(re.fullmatch(pattern, c) for c in concrete), f"PRODUCT.md route {one} not covered"


def test_default_stage_throttles_and_logs_without_paths_or_queries(synth: Synth) -> None:
    ((_, stage),) = synth.of_type("AWS::ApiGatewayV2::Stage").items()
    props = stage["Properties"]
    assert props["StageName"] == "$default"
    assert props["AutoDeploy"] is True
    assert props["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
    fmt = props["AccessLogSettings"]["Format"]
    assert "$context.routeKey" in fmt
    # feed tokens live in the path and booking tokens in the query: neither is logged
    assert "$context.path" not in fmt
    assert "querystring" not in fmt.lower()


def test_cors_allows_only_the_app_origin(synth: Synth) -> None:
    ((_, api),) = synth.of_type("AWS::ApiGatewayV2::Api").items()
    assert api["Properties"]["CorsConfiguration"]["AllowOrigins"] == ["https://app.mentors.test"]
