"""The emulators' side of drift repair (issue 16 item 3): Zoom's meeting events and Google's
``events.list?updatedMin``, read through our own probes.

Zoom sends ``meeting.updated`` / ``meeting.deleted`` — signed as our webhook verifies, in the
payload shapes of ``specs/zoom-meetings-webhooks-openapi.json`` — for the host's changes and for
API changes alike, and only to a subscribed app. Google's ``updatedMin`` lists only events changed
since, deleted ones included even without ``showDeleted`` (the events.list reference).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jsonschema
import pytest
from pydantic import SecretStr

from devstack.emulators import GoogleEmulator, ZoomEmulator, spec
from devstack.emulators import zoom as z
from shared.connections.zoom_webhook import verify_zoom_signature
from shared.providers.google.probe import GoogleProbe
from shared.providers.zoom.probe import ZoomProbe

pytestmark = pytest.mark.skipif(not spec.specs_available(), reason="provider specs not available")


def _schema(event: str) -> dict[str, Any]:
    """The event's body schema; its internal ``$ref``s name ``#/paths/<event>/…`` (the file keeps the
    events under ``webhooks``), so they resolve against a root that has them under ``paths``."""
    doc = spec.load_spec("zoom-meetings-webhooks-openapi.json")
    return {"paths": doc["webhooks"], "$ref": f"#/paths/{event}/post/requestBody/content/application~1json/schema"}


def _verified(zoom: ZoomEmulator, delivery: dict[str, Any]) -> dict[str, Any]:
    headers = delivery["headers"]
    verify_zoom_signature(
        zoom.state.clients[z.DEFAULT_CLIENT_ID].webhook_secret_token,
        signature=headers.get("x-zm-signature"),
        timestamp=headers.get("x-zm-request-timestamp"),
        body=delivery["body"],
    )
    payload: dict[str, Any] = json.loads(delivery["body"])
    jsonschema.validate(payload, _schema(payload["event"]))
    return payload


def test_zoom_sends_signed_meeting_events_for_host_and_api_changes(
    zoom: ZoomEmulator, http: httpx.Client, zoom_tokens: Any, push_receiver: Any
) -> None:
    token = str(zoom_tokens()["access_token"])
    auth = {"Authorization": f"Bearer {token}"}
    made = http.post(
        f"{zoom.api_base}/users/me/meetings",
        headers=auth,
        json={"topic": "Class", "type": 2, "start_time": "2030-03-05T10:00:00Z", "duration": 60, "timezone": "UTC"},
    ).json()
    mid = made["id"]
    # Not subscribed: a change sends nothing
    zoom.host_update_meeting(mid, topic="Renamed")
    assert zoom.wait_webhooks()
    assert push_receiver.received == []
    zoom.subscribe_meeting_events(push_receiver.url)
    try:
        # The app's own PATCH is reported (operator: the token's user), then the host's move, then the delete
        patched = http.patch(f"{zoom.api_base}/meetings/{mid}", headers=auth, json={"duration": 45})
        assert patched.status_code == 204
        assert zoom.wait_webhooks()
        zoom.host_update_meeting(mid, start_time="2030-03-05T12:00:00Z")
        assert zoom.wait_webhooks()
        zoom.host_delete_meeting(mid)
        received = push_receiver.wait_for(3)
    finally:
        zoom.subscribe_meeting_events("")
    api_update, host_update, host_delete = (_verified(zoom, d) for d in received)
    assert api_update["event"] == "meeting.updated"
    assert api_update["payload"]["object"] == {"id": mid, "uuid": made["uuid"], "duration": 45}
    assert api_update["payload"]["old_object"]["duration"] == 60
    assert host_update["payload"]["object"]["start_time"] == "2030-03-05T12:00:00Z"
    assert host_update["payload"]["old_object"]["start_time"] == "2030-03-05T10:00:00Z"
    assert host_delete["event"] == "meeting.deleted"
    assert host_delete["payload"]["object"]["id"] == mid
    assert host_delete["payload"]["operator_id"] == made["host_id"]
    # And our probe sees it gone (one GET: 404, Zoom code 3001)
    seen = ZoomProbe(api_base=zoom.api_base).observe(SecretStr(token), str(mid))
    assert seen.gone


def test_zoom_probe_reads_start_and_end_of_a_meeting(zoom: ZoomEmulator, http: httpx.Client, zoom_tokens: Any) -> None:
    token = str(zoom_tokens()["access_token"])
    made = http.post(
        f"{zoom.api_base}/users/me/meetings",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "topic": "C",
            "type": 2,
            "start_time": "2030-03-05T10:00:00",
            "duration": 50,
            "timezone": "Europe/Berlin",
        },
    ).json()
    seen = ZoomProbe(api_base=zoom.api_base).observe(SecretStr(token), str(made["id"]))
    assert (seen.gone, seen.start, seen.end) == (
        False,
        datetime(2030, 3, 5, 9, 0, tzinfo=UTC),
        datetime(2030, 3, 5, 9, 50, tzinfo=UTC),
    )


def test_google_updated_min_lists_changed_events_deleted_ones_included(
    google: GoogleEmulator, http: httpx.Client, google_tokens: Any
) -> None:
    token = str(google_tokens()["access_token"])
    url = f"{google.calendar_base}/calendars/primary/events"
    auth = {"Authorization": f"Bearer {token}"}
    times = {"start": {"dateTime": "2030-03-05T10:00:00Z"}, "end": {"dateTime": "2030-03-05T11:00:00Z"}}
    kept = http.post(url, headers=auth, json={"summary": "kept", **times}).json()
    gone = http.post(url, headers=auth, json={"summary": "gone", **times}).json()
    assert http.delete(f"{url}/{gone['id']}", headers=auth).status_code == 204
    probe = GoogleProbe(api_base=google.calendar_base)
    before = datetime.now(UTC) - timedelta(minutes=5)
    # Since before both: both, the deleted one as gone (no showDeleted needed with updatedMin)
    seen = {o.meeting_id: o for o in probe.changed(SecretStr(token), "primary", before)}
    assert set(seen) == {kept["id"], gone["id"]}
    assert seen[gone["id"]].gone
    assert not seen[kept["id"]].gone
    assert seen[kept["id"]].start == datetime(2030, 3, 5, 10, 0, tzinfo=UTC)
    # Since after both: nothing; and one GET of the deleted event says gone
    assert probe.changed(SecretStr(token), "primary", datetime.now(UTC) + timedelta(minutes=5)) == []
    assert probe.observe(SecretStr(token), gone["id"], "primary").gone
