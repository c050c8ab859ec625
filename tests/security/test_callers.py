"""Attack: calling a route as someone it is not for (PRODUCT.md §2.9, §3; issue 14 item 1).

Before issue 14 any mentor's JWT could ``POST /bookings`` on another mentor's session (two requests
filled a 2-seat class). Now every route says who may call it (``devstack.routes.Route.who``), and
each caller it is not for is refused, through the local gateway exactly as a client would meet it:

* **platform** routes (``POST /bookings``): the JWT authorizer with the platform scope — a mentor
  token is 403 ``insufficient_scope`` (in AWS API Gateway's own 403), no token 401;
* **mentor** routes: the JWT authorizer; a platform token names no mentor, so the function answers
  403 ``insufficient_scope`` before it reads the body; a booking token is no bearer token (401);
* ``GET /bookings/{id}`` / ``POST /bookings/{id}/cancel``: the platform, the owning mentor or the
  booking token (``X-Booking-Token`` or ``?token=``); another mentor or a wrong token 404, nothing 401;
* provider webhooks and the feed: a bearer token grants nothing (the same answer as without one).

And one JWT leeway (``JWT_LEEWAY_S``, at most 5 s) everywhere: a JWT expired 25 s ago is refused by
the function's own check as by the gateway's.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from classes_support import create, in_person, tables

from devstack.routes import ROUTES, Route
from devstack.stack import LocalStack

#: PRODUCT.md §3's "who" for every route of the table: a new route must be added here on purpose.
WHO: dict[str, str] = {
    "GET /connections": "mentor",
    "POST /connections/{provider}/authorize": "mentor",
    "POST /connections/{provider}/complete": "mentor",
    "POST /connections/apple": "mentor",
    "GET /connections/google/calendars": "mentor",
    "PUT /connections/google/calendar": "mentor",
    "GET /connections/microsoft/calendars": "mentor",
    "PUT /connections/microsoft/calendar": "mentor",
    "DELETE /connections/{provider}": "mentor",
    "GET /mentors/me/busy": "mentor",
    "GET /mentors/me/feed": "mentor",
    "POST /mentors/me/feed/rotate": "mentor",
    "GET /mentors/me/availability": "mentor",
    "PUT /mentors/me/availability": "mentor",
    "GET /mentors/{mentorId}/slots": "platform",
    "GET /oauth/{provider}/callback": "public",
    "POST /classes": "mentor",
    "GET /classes/{id}": "mentor",
    "PATCH /classes/{id}/sessions/{sid}": "mentor",
    "DELETE /classes/{id}/sessions/{sid}": "mentor",
    "POST /bookings": "platform",
    "POST /private-sessions": "platform",
    "GET /bookings/{id}": "public",  # platform, owning mentor or booking token: checked by the function
    "POST /bookings/{id}/cancel": "public",
    "POST /webhooks/stripe": "public",
    "POST /webhooks/zoom": "public",
    "POST /webhooks/google": "public",
    "POST /webhooks/microsoft": "public",
    "GET /feeds/{token}": "public",
}
BOOKING_ROUTES = {"GET /bookings/{id}", "POST /bookings/{id}/cancel"}
CALLERS = ("none", "mentor", "platform", "booking token")
GATEWAY_UNAUTHORIZED = {"message": "Unauthorized"}


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _book_body(session_id: str, n: int = 1) -> dict[str, Any]:
    return {
        "sessionId": session_id,
        "studentEmail": f"student{n}@example.com",
        "studentName": f"Student {n}",
        "priceAmount": 2500,
        "currency": "EUR",
    }


def _error(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code, resp.text


def _concrete(route: Route, booking_id: str) -> str:
    """A request path for ``route`` (the variables filled; booking routes aim at a real booking)."""
    values = {"provider": "google", "id": booking_id if route.key in BOOKING_ROUTES else "cls_x", "sid": "cls_x-s01"}
    values["token"] = "0123456789abcdef0123456789abcdef.ics"
    values["mentorId"] = "mentor_x"
    path = route.path
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    return path


@pytest.fixture
def booked(api: httpx.Client, headers: dict[str, str], platform_headers: dict[str, str], mentor: str) -> dict[str, Any]:
    """A class of ``mentor`` with a PENDING booking the platform made."""
    created = create(api, headers, in_person(capacity=2))
    session_id = created["sessions"][0]["sessionId"]
    resp = api.post("/bookings", json=_book_body(session_id), headers=platform_headers)
    assert resp.status_code == 201, resp.text
    return {**resp.json(), "sessionId": session_id, "classId": created["classId"]}


@pytest.fixture(scope="module")
def one_booking(local_stack: LocalStack) -> dict[str, Any]:
    """One booking for the whole caller matrix (made by the platform in a fresh mentor's class)."""
    owner = _bearer(local_stack.token(f"callers-{uuid.uuid4().hex[:8]}"))
    with httpx.Client(base_url=local_stack.api_url, timeout=10) as client:
        created = create(client, owner, in_person(capacity=5))
        session_id = created["sessions"][0]["sessionId"]
        platform = _bearer(local_stack.platform_token())
        resp = client.post("/bookings", json=_book_body(session_id), headers=platform)
    assert resp.status_code == 201, resp.text
    return {**resp.json(), "sessionId": session_id}


def test_every_route_states_who_may_call_it() -> None:
    # Given the route table the gateway serves and CDK deploys / Then each route's caller is the contract's
    assert {route.key: route.who for route in ROUTES} == WHO
    # And only the platform's routes carry the platform requirement, all behind the JWT authorizer
    assert {route.key for route in ROUTES if route.platform} == {
        "POST /bookings",
        "POST /private-sessions",
        "GET /mentors/{mentorId}/slots",
    }
    assert all(route.auth for route in ROUTES if route.platform)


@pytest.mark.parametrize("function", sorted({r.function for r in ROUTES if r.auth}))
def test_each_function_and_the_gateway_agree_on_its_platform_routes(function: str) -> None:
    # Given a function behind the JWT authorizer / Then its resolver treats exactly the table's platform
    # routes of it as the platform's (the rest refuse a platform token): a new platform route is declared
    # in both places or this fails
    import importlib

    app = importlib.import_module(f"functions.{function}.handler").app
    table = {route.key for route in ROUTES if route.platform and route.function == function}
    assert app.platform_routes == table


#: The two functions that serve the mentor's own data (connections_api was split in two: the /mentors routes
#: are mentors_api's); each keeps the refusals the one function had.
SPLIT_FUNCTIONS = ("connections_api", "mentors_api")


@pytest.mark.parametrize("function", SPLIT_FUNCTIONS)
def test_the_caller_matrix_covers_every_route_of_the_split_functions(function: str) -> None:
    # Given the routes of connections_api / of mentors_api
    routes = [route for route in ROUTES if route.function == function]
    assert routes
    # Then every caller kind a route is not for is in the matrix the gateway test runs: a mentor route
    # refuses no token, the platform's token and a booking token; the slots route a mentor's token too
    for route in routes:
        refused = {caller for refused_route, caller in REFUSED if refused_route == route}
        expected = {"none", "booking token", "mentor" if route.who == "platform" else "platform"}
        assert refused == expected, route.key
    # And the split moved no route between caller kinds: mentor routes stay mentor routes, slots the platform's
    assert {route.key for route in routes if route.who == "platform"} == (
        {"GET /mentors/{mentorId}/slots"} if function == "mentors_api" else set()
    )


@pytest.mark.parametrize(("function", "other"), [SPLIT_FUNCTIONS, SPLIT_FUNCTIONS[::-1]])
def test_each_split_function_serves_only_its_own_routes(
    function: str, other: str, local_stack: LocalStack, mentor: str
) -> None:
    # Given a mentor's claims and the other function's routes, sent to this function's handler in process
    from devstack.gateway import HttpRequest, build_event
    from devstack.routes import invoke

    module = f"functions.{function}.handler"
    for route in [r for r in ROUTES if r.function == other]:
        path = _concrete(route, "bkg_x")
        claims = {"sub": "platform-client", "scope": "platform"} if route.platform else {"sub": mentor}
        request = HttpRequest(route.method, path, [("content-type", "application/json")], b"{}")
        event = build_event(route, {}, request, claims=claims, api_id="unit")
        # When it is invoked / Then no route of one is served by the other: a mentor route is 404 not_found;
        # the platform's slots route is refused to the platform token before routing (connections_api has no
        # platform route, so a platform token is never let in)
        result = invoke(module, function, event, timeout_s=10)
        status, code = (403, "insufficient_scope") if route.platform else (404, "not_found")
        assert result["statusCode"] == status, (function, route.key, result)
        assert json.loads(result["body"])["error"]["code"] == code, (function, route.key, result)


def test_a_mentor_cannot_book_a_seat_and_the_platform_can(
    api: httpx.Client,
    local_stack: LocalStack,
    headers: dict[str, str],
    mentor_headers: Any,
    platform_headers: dict[str, str],
) -> None:
    # Given a mentor's 2-seat class
    created = create(api, headers, in_person(capacity=2))
    session_id = created["sessions"][0]["sessionId"]
    _, schedule = tables(local_stack)
    # When the owning mentor, another mentor, a mentor token with other scopes, or nobody books it
    refused = [
        api.post("/bookings", json=_book_body(session_id, 1), headers=headers),
        api.post("/bookings", json=_book_body(session_id, 2), headers=mentor_headers("someone-else")),
        api.post("/bookings", json=_book_body(session_id, 3), headers=mentor_headers("m", scope="openid email")),
    ]
    # Then each mentor token is 403 insufficient_scope (the gateway's scope check), with the challenge
    for resp in refused:
        _error(resp, 403, "insufficient_scope")
        assert 'error="insufficient_scope"' in (resp.headers.get("www-authenticate") or "")
    # And no token is the gateway's 401
    none = api.post("/bookings", json=_book_body(session_id, 4))
    assert (none.status_code, none.json()) == (401, GATEWAY_UNAUTHORIZED)
    # And a booking body from a mentor is refused before it is read (403, not 400)
    _error(api.post("/bookings", json={"nonsense": True}, headers=headers), 403, "insufficient_scope")
    # And not one seat was taken
    session = schedule.get_session(session_id)
    assert session is not None
    assert session.seats_taken == 0
    assert schedule.bookings_of_session(session_id) == []
    # When the platform books / Then 201 PENDING and one seat is taken
    made = api.post("/bookings", json=_book_body(session_id, 5), headers=platform_headers)
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "PENDING"
    session = schedule.get_session(session_id)
    assert session is not None
    assert session.seats_taken == 1


@pytest.mark.parametrize("route", [r for r in ROUTES if r.who == "mentor"], ids=lambda r: r.key)
def test_mentor_routes_refuse_the_platform_token_before_reading_anything(
    route: Route, api: httpx.Client, platform_headers: dict[str, str], booked: dict[str, Any]
) -> None:
    # Given a mentor route / When the platform's token calls it (with a JSON body where one is taken)
    body = {} if route.method in ("POST", "PUT", "PATCH") else None
    resp = api.request(route.method, _concrete(route, booked["bookingId"]), json=body, headers=platform_headers)
    # Then 403 insufficient_scope: a platform token names no mentor
    _error(resp, 403, "insufficient_scope")


def _allowed(route: Route, caller: str) -> bool:
    """Who may call: the route's principal; on the booking routes also the platform and the token."""
    if route.key in BOOKING_ROUTES:
        return caller in ("platform", "booking token")  # (and the owning mentor: never the caller here)
    return route.who == caller or (route.who == "public" and caller == "none")


REFUSED = [(route, caller) for route in ROUTES for caller in CALLERS if not _allowed(route, caller)]


@pytest.mark.parametrize(("route", "caller"), REFUSED, ids=lambda v: v.key if isinstance(v, Route) else v)
def test_every_route_refuses_the_callers_it_is_not_for(
    route: Route,
    caller: str,
    api: httpx.Client,
    local_stack: LocalStack,
    mentor_headers: Any,
    platform_headers: dict[str, str],
    one_booking: dict[str, Any],
) -> None:
    # Given a route and a caller (a stranger mentor: never the booking's owner)
    booked = one_booking
    path = _concrete(route, booked["bookingId"])
    body = {} if route.method in ("POST", "PUT", "PATCH") else None
    credential: dict[str, str] = {
        "none": {},
        "mentor": mentor_headers(f"stranger-{uuid.uuid4().hex[:6]}"),
        "platform": platform_headers,
        "booking token": {"x-booking-token": booked["bookingToken"]},
    }[caller]
    # When it calls the route
    resp = api.request(route.method, path, json=body, headers=credential)
    # Then the caller is refused as the route's rules say (allowed callers are the other tests' business)
    if route.who in ("mentor", "platform") and caller in ("none", "booking token"):
        assert (resp.status_code, resp.json()) == (401, GATEWAY_UNAUTHORIZED)  # the gateway's authorizer
    elif (route.who, caller) in (("mentor", "platform"), ("platform", "mentor")):
        _error(resp, 403, "insufficient_scope")
    elif route.key in BOOKING_ROUTES:
        if caller == "none":
            _error(resp, 401, "unauthorized")
        else:
            _error(resp, 404, "booking_not_found")  # another mentor's booking: as if it did not exist
    else:
        # provider webhooks, the OAuth callback, the feed: a credential grants nothing
        assert route.who == "public", route.key
        plain = api.request(route.method, path, json=body)
        assert (resp.status_code, resp.headers.get("location")) == (plain.status_code, plain.headers.get("location"))
        if resp.headers.get("content-type", "").startswith("application/json"):
            assert resp.json() == plain.json()
        assert resp.status_code >= 300, resp.text


def test_the_booking_routes_take_the_platform_the_owner_or_the_token_in_a_header_or_the_query(
    api: httpx.Client,
    local_stack: LocalStack,
    headers: dict[str, str],
    platform_headers: dict[str, str],
    booked: dict[str, Any],
) -> None:
    url = f"/bookings/{booked['bookingId']}"
    token = booked["bookingToken"]
    # Given a booking / When the platform, its mentor, and the token (header, query, both) read it
    views = [
        api.get(url, headers=platform_headers),
        api.get(url, headers=headers),
        api.get(url, headers={"x-booking-token": token}),
        api.get(url, params={"token": token}),
        api.get(url, params={"token": token}, headers={"x-booking-token": token}),
    ]
    # Then each is the same 200 view
    assert [v.status_code for v in views] == [200] * len(views), [v.text for v in views]
    assert len({v.text for v in views}) == 1
    assert views[0].json()["bookingId"] == booked["bookingId"]
    # And a wrong token in the header, or a header and a query that disagree, is the 404 of a wrong token
    _error(api.get(url, headers={"x-booking-token": token[:-2] + "xx"}), 404, "booking_not_found")
    _error(api.get(url, params={"token": "guess"}, headers={"x-booking-token": token}), 404, "booking_not_found")
    _error(api.get(f"/bookings/bkg_{uuid.uuid4().hex[:24]}", headers=platform_headers), 404, "booking_not_found")
    # When the platform cancels it / Then 202, the booking is CANCELLED by "platform" and its seat freed
    resp = api.post(f"{url}/cancel", headers=platform_headers)
    assert (resp.status_code, resp.json()["status"]) == (202, "CANCELLED"), resp.text
    _, schedule = tables(local_stack)
    stored = schedule.get_booking(booked["bookingId"])
    assert stored is not None
    assert (stored.status.value, stored.cancel_reason) == ("CANCELLED", "platform")
    session = schedule.get_session(booked["sessionId"])
    assert session is not None
    assert session.seats_taken == 0
    # And the student's token (header) still reads the cancelled booking
    assert api.get(url, headers={"x-booking-token": token}).json()["status"] == "CANCELLED"


def test_a_student_cancels_with_the_header_token(
    api: httpx.Client, local_stack: LocalStack, booked: dict[str, Any]
) -> None:
    # Given a booking / When the student cancels with X-Booking-Token (no query string)
    resp = api.post(f"/bookings/{booked['bookingId']}/cancel", headers={"x-booking-token": booked["bookingToken"]})
    # Then 202 and the booking is cancelled by the student
    assert resp.status_code == 202, resp.text
    _, schedule = tables(local_stack)
    stored = schedule.get_booking(booked["bookingId"])
    assert stored is not None
    assert (stored.status.value, stored.cancel_reason) == ("CANCELLED", "student")


def test_one_jwt_leeway_a_token_expired_25_s_ago_is_refused_everywhere(
    api: httpx.Client, local_stack: LocalStack, mentor: str, booked: dict[str, Any]
) -> None:
    url = f"/bookings/{booked['bookingId']}"
    stale = local_stack.token(mentor, ttl_s=-25)
    stale_platform = local_stack.platform_token(ttl_s=-25)
    # When a mentor or platform JWT that expired 25 s ago reads the booking (the function's own check)
    # Then 401, as the gateway's authorizer answers on a mentor route and a platform route
    _error(api.get(url, headers=_bearer(stale)), 401, "unauthorized")
    _error(api.get(url, headers=_bearer(stale_platform)), 401, "unauthorized")
    assert api.get("/connections", headers=_bearer(stale)).status_code == 401
    assert (
        api.post("/bookings", json=_book_body(booked["sessionId"]), headers=_bearer(stale_platform)).status_code == 401
    )
    # And within the leeway (expired 1 s ago, at most 5 s tolerated) both still pass
    fresh_enough = local_stack.token(mentor, exp=int(time.time()) - 1)
    assert api.get(url, headers=_bearer(fresh_enough)).status_code == 200
    assert api.get("/connections", headers=_bearer(fresh_enough)).status_code == 200
