"""Microsoft emulator: subscriptions (validationToken handshake, clientState, expiration cap,
renewal, change and lifecycle notifications), throttling, and conformance of every route and
answer to the Graph OpenAPI cut; the emulator as a local-stack component."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from devstack.emulators import microsoft as ms
from devstack.emulators.microsoft import MicrosoftEmulator, graph_spec
from devstack.providers import MicrosoftProvider
from tests.integration.emulators.microsoft.support import START, Receiver, bearer, iso_in, tokens, when

EVENT = {"subject": "Class", "start": when(START), "end": when(START + timedelta(hours=1))}


def subscribe(
    http: httpx.Client, emu: MicrosoftEmulator, token: str, receiver: Receiver, **extra: Any
) -> httpx.Response:
    body = {
        "changeType": "created,updated,deleted",
        "notificationUrl": receiver.url,
        "lifecycleNotificationUrl": receiver.url.replace("/webhooks/microsoft", "/webhooks/microsoft/lifecycle"),
        "resource": "me/events",
        "expirationDateTime": iso_in(emu, 4000),
        "clientState": "mentor-42-secret",
        **extra,
    }
    return http.post(f"{emu.api_base}/subscriptions", headers=bearer(token), json=body)


def test_subscription_handshake_notifications_and_renewal(
    emu: MicrosoftEmulator, http: httpx.Client, token: str, receiver: Receiver
) -> None:
    # When the app subscribes to its events
    created = subscribe(http, emu, token, receiver)
    # Then Graph validated both URLs first (the decoded token echoed in text/plain) and answered 201
    assert created.status_code == 201, created.text
    sub = created.json()
    assert len(receiver.validations) == 2
    assert receiver.validations[0].startswith("Validation: ")
    assert sub["clientState"] == "mentor-42-secret"
    assert sub["changeType"] == "created,updated,deleted"
    # When an event is created through Graph and then changed in Outlook (the admin API)
    event = http.post(f"{emu.api_base}/me/events", headers=bearer(token), json=EVENT).json()
    emu.update_event_external(event["id"], {"subject": "Moved in Outlook"})
    emu.delete_event_external(event["id"])
    # Then three notifications arrive, each with the clientState and the event's id
    receiver.wait_for(3)
    notes = receiver.notifications()
    assert [n["changeType"] for n in notes] == ["created", "updated", "deleted"]
    assert {n["clientState"] for n in notes} == {"mentor-42-secret"}
    assert {n["subscriptionId"] for n in notes} == {sub["id"]}
    assert {n["resourceData"]["id"] for n in notes} == {event["id"]}
    # When it is renewed
    renewed = http.patch(
        f"{emu.api_base}/subscriptions/{sub['id']}",
        headers=bearer(token),
        json={"expirationDateTime": iso_in(emu, 4200)},
    )
    assert renewed.status_code == 200
    assert renewed.json()["expirationDateTime"] > sub["expirationDateTime"]
    # When it is deleted, changes are no longer sent and it is gone
    assert http.delete(f"{emu.api_base}/subscriptions/{sub['id']}", headers=bearer(token)).status_code == 204
    http.post(f"{emu.api_base}/me/events", headers=bearer(token), json=EVENT)
    assert emu.flush_notifications()
    assert len(receiver.notifications()) == 3
    gone = http.patch(
        f"{emu.api_base}/subscriptions/{sub['id']}", headers=bearer(token), json={"expirationDateTime": iso_in(emu, 60)}
    )
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "ResourceNotFound"


def test_lifecycle_notifications(emu: MicrosoftEmulator, http: httpx.Client, token: str, receiver: Receiver) -> None:
    sub = subscribe(http, emu, token, receiver).json()
    # When Graph sends each lifecycle event
    for event in ("reauthorizationRequired", "missed", "subscriptionRemoved"):
        assert emu.send_lifecycle(sub["id"], event)["sent"] is True
    # Then they reach the lifecycle URL with the clientState, in order
    items = receiver.wait_for(3)
    assert {i["path"] for i in items} == {"/webhooks/microsoft/lifecycle"}
    values = [i["body"]["value"][0] for i in items]
    assert [v["lifecycleEvent"] for v in values] == ["reauthorizationRequired", "missed", "subscriptionRemoved"]
    assert {v["clientState"] for v in values} == {"mentor-42-secret"}
    # And subscriptionRemoved removed it: renewing now fails, and it must be created again
    renew = http.patch(
        f"{emu.api_base}/subscriptions/{sub['id']}", headers=bearer(token), json={"expirationDateTime": iso_in(emu, 60)}
    )
    assert renew.status_code == 404
    assert emu.subscriptions() == []
    # The admin route is the same hook
    again = subscribe(http, emu, token, receiver).json()
    hook = http.post(f"{emu.base_url}/_admin/subscriptions/{again['id']}/lifecycle", json={"event": "missed"})
    assert hook.json()["sent"] is True
    assert (
        http.post(f"{emu.base_url}/_admin/subscriptions/{again['id']}/lifecycle", json={"event": "x"}).status_code
        == 400
    )


def test_calendar_subscription_and_delivery_retries(
    emu: MicrosoftEmulator, http: httpx.Client, token: str, receiver: Receiver
) -> None:
    # Given a subscription on a second calendar only
    emu.add_user(ms.DEFAULT_USER_EMAIL, calendars=[{"name": "Classes"}])
    cals = http.get(f"{emu.api_base}/me/calendars", headers=bearer(token)).json()["value"]
    classes = next(c["id"] for c in cals if c["name"] == "Classes")
    sub = subscribe(http, emu, token, receiver, resource=f"me/calendars/{classes}/events", changeType="created")
    assert sub.status_code == 201, sub.text
    # When an event lands on the default calendar, then one on Classes while the endpoint fails twice
    http.post(f"{emu.api_base}/me/events", headers=bearer(token), json=EVENT)
    receiver.fail_next = 2
    emu.seed_event(classes, EVENT)
    # Then only the Classes event is notified, delivered on the third attempt
    assert emu.flush_notifications()
    assert len(receiver.wait_for(1)) == 1
    assert [d["status"] for d in emu.deliveries("change")] == [500, 500, 202]


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("encoded", "not the decoded validationToken"),
        ("json", "not text/plain"),
        ("refuse", "answered 403"),
        ("slow", "no answer within 0.3 s"),
    ],
)
def test_failed_handshake_makes_no_subscription(
    emu: MicrosoftEmulator, http: httpx.Client, token: str, receiver: Receiver, mode: str, why: str
) -> None:
    # Given an endpoint that answers the validation request wrongly (or too late)
    receiver.mode, receiver.delay = mode, 0.6
    emu.configure(validation_timeout_seconds=0.3)
    # When the app subscribes
    resp = subscribe(http, emu, token, receiver)
    # Then 400 ValidationError and nothing was made
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "ValidationError"
    assert why in resp.json()["error"]["message"]
    assert emu.subscriptions() == []


def test_subscription_limits(emu: MicrosoftEmulator, http: httpx.Client, token: str, receiver: Receiver) -> None:
    # The expiration cap for Outlook events is 4,230 minutes
    assert subscribe(http, emu, token, receiver, expirationDateTime=iso_in(emu, 4229)).status_code == 201
    over = subscribe(http, emu, token, receiver, expirationDateTime=iso_in(emu, 4231))
    assert over.status_code == 400
    assert "4230 minutes" in over.json()["error"]["message"]
    assert subscribe(http, emu, token, receiver, expirationDateTime=iso_in(emu, -1)).status_code == 400
    # ... or, told to, the emulator cuts it to the cap
    emu.configure(subscription_cap_mode="clamp")
    clamped = subscribe(http, emu, token, receiver, expirationDateTime=iso_in(emu, 10080)).json()
    assert clamped["expirationDateTime"] <= iso_in(emu, 4230)
    # clientState at most 128 characters; https only (loopback http is allowed here for the stack)
    assert subscribe(http, emu, token, receiver, clientState="x" * 129).status_code == 400
    plain = subscribe(http, emu, token, receiver, notificationUrl="http://example.com/hook")
    assert plain.status_code == 400
    # Only the signed-in user's mailbox, only event resources, known change types
    other = subscribe(http, emu, token, receiver, resource="users/someone@else.example/events")
    assert other.status_code == 403
    assert subscribe(http, emu, token, receiver, resource="me/messages").status_code == 400
    assert subscribe(http, emu, token, receiver, changeType="moved").status_code == 400
    # An expired subscription is gone
    emu.advance_clock(4231 * 60)
    late = http.delete(
        f"{emu.api_base}/subscriptions/{clamped['id']}", headers=bearer(tokens(http, emu)["access_token"])
    )
    assert late.status_code == 404


# ---- throttling -------------------------------------------------------------------------------


def test_throttling_answers_429_with_retry_after(emu: MicrosoftEmulator, http: httpx.Client, token: str) -> None:
    # Injected: 429 with Retry-After and Graph's TooManyRequests body, then 500
    emu.set_faults(
        forced=[{"status": 429, "path_prefix": "/v1.0/", "retry_after": 3}, {"status": 500, "path_prefix": "/v1.0/"}]
    )
    first = http.get(emu.api_base + "/me", headers=bearer(token))
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "3"
    assert first.json()["error"]["code"] == "TooManyRequests"
    second = http.get(emu.api_base + "/me", headers=bearer(token))
    assert second.status_code == 500
    assert second.json()["error"]["code"] == "generalException"
    assert http.get(emu.api_base + "/me", headers=bearer(token)).status_code == 200
    # Outlook's own window per app and mailbox: over it, 429 ApplicationThrottled until the window frees
    emu.clear_faults()
    emu.advance_clock(61)  # the window counts per app and mailbox: start from an empty one
    emu.configure(rate_limit_requests=2, rate_limit_window_seconds=60)
    fresh = bearer(tokens(http, emu)["access_token"])
    assert [http.get(emu.api_base + "/me", headers=fresh).status_code for _ in range(2)] == [200, 200]
    limited = http.get(emu.api_base + "/me", headers=fresh)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "ApplicationThrottled"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    emu.advance_clock(61)
    assert http.get(emu.api_base + "/me", headers=fresh).status_code == 200
    # The token endpoint throttles with an AADSTS body
    emu.set_faults(forced=[{"status": 429, "path_prefix": "/common/oauth2/"}])
    throttled = http.post(emu.token_url, data={"grant_type": "refresh_token"})
    assert throttled.status_code == 429
    assert throttled.json()["error"] == "temporarily_unavailable"


# ---- conformance ------------------------------------------------------------------------------


def _template(rule: str) -> str:
    names = {"calendar_id": "calendar-id", "event_id": "event-id", "subscription_id": "subscription-id"}
    path = rule.removeprefix("/v1.0")
    for var, name in names.items():
        path = path.replace(f"<{var}>", "{" + name + "}")
    return graph_spec.template_for(path)


def test_every_graph_route_is_in_the_openapi_cut(emu: MicrosoftEmulator) -> None:
    served = {
        (method, rule.rule)
        for rule in emu.app.url_map.iter_rules()
        if rule.rule.startswith("/v1.0/") and rule.rule != "/v1.0/<path:rest>"
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    # Both getSchedule forms are served, and every Graph route maps to an operation of the cut
    assert ("POST", "/v1.0/me/calendar/getSchedule") in served
    assert ("POST", "/v1.0/me/calendar/microsoft.graph.getSchedule") in served
    doc = graph_spec.document()
    for method, rule in served:
        assert method.lower() in doc["paths"][_template(rule)], f"{method} {rule}"
    ops = {(m, graph_spec.template_for(p)) for m, p, _ in ms.OPS.values()}
    assert ops == {(m, _template(r)) for m, r in served}


def test_answers_validate_against_the_openapi_cut(
    emu: MicrosoftEmulator, http: httpx.Client, token: str, receiver: Receiver
) -> None:
    h = bearer(token)
    api = emu.api_base
    cal = emu.default_calendar_id(ms.DEFAULT_USER_EMAIL)
    teams = {**EVENT, "isOnlineMeeting": True, "onlineMeetingProvider": "teamsForBusiness", "transactionId": "t-1"}
    created = http.post(f"{api}/me/calendars/{cal}/events", headers=h, json=teams)
    eid = created.json()["id"]
    sub = subscribe(http, emu, token, receiver)
    day = {
        "schedules": [ms.DEFAULT_USER_EMAIL, "x@y.example"],
        "startTime": when(START),
        "endTime": when(START + timedelta(days=1)),
    }
    calls: list[tuple[str, str, httpx.Response]] = [
        ("GET", "/me", http.get(f"{api}/me", headers=h)),
        ("GET", "/me/calendars", http.get(f"{api}/me/calendars", headers=h)),
        ("GET", "/me/calendars/{calendar-id}", http.get(f"{api}/me/calendars/{cal}", headers=h)),
        ("POST", "/me/calendars/{calendar-id}/events", created),
        ("POST", "/me/events", http.post(f"{api}/me/events", headers=h, json=EVENT)),
        ("GET", "/me/events/{event-id}", http.get(f"{api}/me/events/{eid}", headers=h)),
        ("PATCH", "/me/events/{event-id}", http.patch(f"{api}/me/events/{eid}", headers=h, json={"subject": "New"})),
        ("POST", "/me/calendar/getSchedule", http.post(f"{api}/me/calendar/getSchedule", headers=h, json=day)),
        ("POST", "/subscriptions", sub),
        (
            "PATCH",
            "/subscriptions/{subscription-id}",
            http.patch(
                f"{api}/subscriptions/{sub.json()['id']}", headers=h, json={"expirationDateTime": iso_in(emu, 99)}
            ),
        ),
        ("DELETE", "/me/events/{event-id}", http.delete(f"{api}/me/events/{eid}", headers=h)),
        ("GET", "/me/events/{event-id}", http.get(f"{api}/me/events/{eid}", headers=h)),  # 404 error body
        ("GET", "/me", http.get(f"{api}/me")),  # 401 error body
        ("POST", "/me/events", http.post(f"{api}/me/events", headers=h, json={"bogus": 1})),  # 400 error body
    ]
    # Every answer (success and error bodies) fits the cut
    for method, path, resp in calls:
        template = graph_spec.template_for(path)
        body = resp.json() if resp.content else None
        assert graph_spec.response_findings(method, template, resp.status_code, body) == [], (method, path, body)
    assert {r.status_code for _, _, r in calls} >= {200, 201, 204, 400, 401, 404}
    # And the notifications sent fit the changeNotificationCollection schema
    receiver.wait_for(3)
    for item in receiver.received:
        assert graph_spec.notification_findings(item["body"]) == []
    emu.send_lifecycle(sub.json()["id"], "missed")
    assert graph_spec.notification_findings(receiver.wait_for(4)[-1]["body"]) == []
    # The check is not vacuous: a field Graph never sends is caught
    planted = {**calls[0][2].json(), "meetingLink": "x"}
    assert [str(f) for f in graph_spec.response_findings("GET", "/me", 200, planted)] == [
        "$.meetingLink: unknown field"
    ]
    # And nothing the emulator received from these requests broke the cut
    assert emu.snapshot()["request_findings"][-1]["findings"] == ["$.bogus: unknown field"]


# ---- local stack component --------------------------------------------------------------------


def test_stack_component_exports_microsoft_settings() -> None:
    provider = MicrosoftProvider()
    provider.start()
    try:
        provider.bind_api("http://127.0.0.1:9999")
        env = provider.environment()
        base = provider.emulator.base_url
        assert env == {
            "MICROSOFT_AUTH_URL": f"{base}/common/oauth2/v2.0/authorize",
            "MICROSOFT_TOKEN_URL": f"{base}/common/oauth2/v2.0/token",
            "MICROSOFT_API_BASE": f"{base}/v1.0",
            "MICROSOFT_CLIENT_ID": ms.DEFAULT_CLIENT_ID,
            "MICROSOFT_CLIENT_SECRET": ms.DEFAULT_CLIENT_SECRET,
        }
        assert provider.endpoints() == {"microsoft": base}
        client = provider.emulator.state.clients[ms.DEFAULT_CLIENT_ID]
        assert "http://127.0.0.1:9999/oauth/microsoft/callback" in client.redirect_uris
        assert provider.emulator.state.allow_http_loopback_notifications is True
    finally:
        provider.stop()
