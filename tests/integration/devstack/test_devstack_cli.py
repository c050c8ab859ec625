"""``python -m devstack up`` / ``token`` as subprocesses, the way a developer uses them."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
STARTUP_BUDGET_S = 10.0


def _devstack(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=30
    )


@pytest.fixture(scope="module")
def running_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``python -m devstack up`` in its own directory; yields endpoints, env and startup time."""
    home = tmp_path_factory.mktemp("devstack-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TABLE_NAME", "API_URL"))}
    env["DEVSTACK_DIR"] = str(home)
    stderr = (home / "up.stderr").open("w")
    launched = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack", "up"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=stderr
    )
    try:
        assert process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout=STARTUP_BUDGET_S + 5)
        line = process.stdout.readline() if ready else b""
        startup_s = time.monotonic() - launched
        assert line, f"no endpoints line; stderr: {(home / 'up.stderr').read_text()}"
        yield {
            "endpoints": json.loads(line),
            "env": env,
            "home": home,
            "process": process,
            "startup_s": startup_s,
        }
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        stderr.close()


def test_up_prints_endpoints_within_budget(running_up: dict[str, Any]) -> None:
    # Given `python -m devstack up` was launched
    # Then within 10 s it printed one JSON line of loopback endpoints and wrote its state file
    print(f"devstack up ready in {running_up['startup_s']:.2f} s")
    assert running_up["startup_s"] < STARTUP_BUDGET_S
    endpoints = running_up["endpoints"]
    for name in ("api", "aws", "jwks", "meetings_queue_url", "busy_sync_queue_url"):
        assert endpoints[name].startswith("http://127.0.0.1:")
    state = json.loads((running_up["home"] / "state.json").read_text())
    assert state["endpoints"] == endpoints
    assert state["pid"] == running_up["process"].pid


def test_token_from_cli_is_accepted_by_running_gateway(running_up: dict[str, Any]) -> None:
    # Given a token printed by `python -m devstack token`
    result = _devstack("token", "--mentor", "m1", env=running_up["env"])
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    api = running_up["endpoints"]["api"]
    # When it calls a mentor route, and so does a tampered copy
    ok = httpx.get(f"{api}/connections", headers={"authorization": f"Bearer {token}"}, timeout=10)
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    bad = httpx.get(f"{api}/connections", headers={"authorization": f"Bearer {forged}"}, timeout=10)
    # Then the gateway lets the first through and refuses the second
    assert ok.status_code != 401
    assert bad.status_code == 401
    assert bad.json() == {"message": "Unauthorized"}


def test_platform_token_from_cli_passes_the_platform_scope_check_and_a_mentor_token_does_not(
    running_up: dict[str, Any],
) -> None:
    # Given the platform's token and a mentor's, printed by `python -m devstack token`
    platform = _devstack("token", "--platform", env=running_up["env"])
    mentor = _devstack("token", "--mentor", "m9", env=running_up["env"])
    assert platform.returncode == 0, platform.stderr
    assert mentor.returncode == 0, mentor.stderr
    api = running_up["endpoints"]["api"]
    # When each calls POST /bookings (the platform's route) with a session that does not exist
    body = {"sessionId": "cls_none-s01", "studentEmail": "a@example.com", "studentName": "A"}
    body |= {"priceAmount": 2500, "currency": "EUR"}
    as_platform = httpx.post(
        f"{api}/bookings", json=body, headers={"authorization": f"Bearer {platform.stdout.strip()}"}, timeout=10
    )
    as_mentor = httpx.post(
        f"{api}/bookings", json=body, headers={"authorization": f"Bearer {mentor.stdout.strip()}"}, timeout=10
    )
    # Then the platform reaches the function (404 session_not_found) and the mentor is refused at the gateway
    assert as_platform.status_code == 404, as_platform.text
    assert as_platform.json()["error"]["code"] == "session_not_found"
    assert as_mentor.status_code == 403, as_mentor.text
    assert as_mentor.json()["error"]["code"] == "insufficient_scope"
    # And the platform token is refused on a mentor route
    refused = httpx.get(
        f"{api}/connections", headers={"authorization": f"Bearer {platform.stdout.strip()}"}, timeout=10
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "insufficient_scope"
    # And --platform with --mentor is a usage error
    assert _devstack("token", "--platform", "--mentor", "m1", env=running_up["env"]).returncode == 2


def test_token_with_plan_upserts_the_mentor_profile(running_up: dict[str, Any]) -> None:
    # Given the running stack
    endpoints = running_up["endpoints"]
    # When a token is requested with a plan
    result = _devstack("token", "--mentor", "m2", "--plan", "pro", env=running_up["env"])
    # Then a token is printed and the mentor's profile has that plan
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(".") == 2
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=endpoints["aws"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    item = dynamodb.get_item(TableName=endpoints["table"], Key={"PK": {"S": "MENTOR#m2"}, "SK": {"S": "PROFILE"}})
    assert item["Item"]["plan"] == {"S": "pro"}


def test_outbox_prints_what_the_stack_sent(running_up: dict[str, Any]) -> None:
    # Given an e-mail sent through the running stack's SES (raw MIME with an attachment, like bookings)
    from shared.notify.emails import Attachment, Mailer, OutgoingEmail

    endpoints = running_up["endpoints"]
    ses = boto3.client(
        "sesv2",
        endpoint_url=endpoints["aws"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    state = json.loads((running_up["home"] / "state.json").read_text())
    mail = OutgoingEmail(
        to="outbox-cli@example.com",
        subject="Booked: outbox test",
        text="join here",
        html="<p>join here</p>",
        attachments=(Attachment("class.ics", "text/calendar; method=PUBLISH", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR"),),
    )
    Mailer(ses, state["environment"]["SENDER_EMAIL"]).send(mail)
    # When `python -m devstack outbox --to` runs
    result = _devstack("outbox", "--to", "outbox-cli@example.com", env=running_up["env"])
    # Then it prints that e-mail, decoded, as one JSON line
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.strip().splitlines()
    shown = json.loads(line)
    assert shown["to"] == ["outbox-cli@example.com"]
    assert shown["subject"] == "Booked: outbox test"
    assert shown["text"].strip() == "join here"
    assert shown["attachments"] == {"class.ics": 30}


def test_up_stops_cleanly_on_sigterm(running_up: dict[str, Any]) -> None:
    # Given the running process
    process = running_up["process"]
    # When it gets SIGTERM
    process.send_signal(signal.SIGTERM)
    # Then it exits 0 promptly and removes its state file
    assert process.wait(timeout=15) == 0
    assert not (running_up["home"] / "state.json").exists()
    # and `token --plan` now explains that no stack is running
    result = _devstack("token", "--mentor", "m3", "--plan", "pro", env=running_up["env"])
    assert result.returncode == 1
    assert "devstack up" in result.stderr


def test_demo_without_demo_module_explains(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Given no devstack/demo.py (simulated: the import is blocked)
    monkeypatch.setitem(sys.modules, "devstack.demo", None)
    # When `demo` runs
    from devstack.cli import main

    code = main(["demo"])
    # Then it says so clearly and fails
    assert code == 2
    assert "demo.py" in capsys.readouterr().err


#: What the stack sets for the functions; the demo starts its own stack, so none may leak in.
_STACK_ENV = ("AWS_", "TABLE_NAME", "KMS_KEY_ID", "API_URL", "APP_URL", "GOOGLE_", "ZOOM_", "APPLE_", "MEETINGS_")
_STACK_ENV += ("BUSY_SYNC_", "SENDER_EMAIL", "POWERTOOLS_", "MICROSOFT_")


def test_demo_tells_the_story_and_connects_all_three(tmp_path: Path) -> None:
    # Given a clean environment (its own devstack directory, no stack variables)
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STACK_ENV)}
    env["DEVSTACK_DIR"] = str(tmp_path)
    # When `python -m devstack demo` runs (what `make demo` does)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "devstack", "demo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )
    print(f"demo ran in {time.monotonic() - started:.1f} s")
    # Then it exits 0 having told every step
    assert result.returncode == 0, f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    out = result.stdout
    assert "demo finished in" in out
    # And Google, Zoom and Microsoft were connected through OAuth: the callback parks them, the mentor app
    # completes them
    for provider in ("google", "zoom", "microsoft"):
        assert f"/mentor/settings/connections?provider={provider}&pending=…" in out
        assert f'POST /connections/{provider}/complete {{"pending": "…"}}' in out
    # And a consent URL completed by another mentor's session was refused
    assert "403 oauth_mentor_mismatch" in out
    # And Apple's two refusals were shown: the wrong format (no network call) and the wrong password
    assert "400 invalid_app_specific_password" in out
    assert "0 connections reached the CalDAV server" in out
    assert "400 apple_auth_failed" in out
    # And the final list shows all four connected, with their labels
    listed = dict(
        re.findall(r"^ {4}(google|zoom|apple|microsoft) +connected +(Connected as [^(\n]+?)(?: \(|$)", out, re.M)
    )
    assert listed == {
        "google": "Connected as ada@example.com",
        "zoom": "Connected as Ada Lovelace",
        "apple": "Connected as ada@icloud.com",
        "microsoft": "Connected as ada@contoso.com",
    }
    # And the classes → bookings → Stripe → meetings story ran: one Meet event shared, moved, deleted
    assert "Alan's meetingUrl is Grace's: True; events for the session in Google Calendar: 1" in out
    # And the trust boundaries: the platform books (a seat held until a time), a mentor token cannot,
    # a payment of the wrong amount changes nothing, an abandoned checkout gives its seat back
    assert re.search(r"POST /bookings \(Grace, platform token\) → 201 .* seat held until \d{4}-", out)
    assert "POST /bookings with a mentor's token → 403 insufficient_scope" in out
    assert "(checkout.session.completed, 1 JPY) → 200 payment_mismatch" in out
    assert "the booking is still PENDING" in out
    assert re.search(r"the hold ended: the booking is EXPIRED, seats taken: 0/4", out)
    assert "warning zoom_free_40_min_cap" in out
    # And a Teams class (issue 18 item 6): its paid booking has the Outlook event's Teams link, e-mailed
    assert re.search(r'"provider": "teams",\s+"meetingUrl": "https://teams\.microsoft\.com/l/meetup-join/', out)
    assert '"onlineMeetingProvider": "teamsForBusiness"' in out
    assert "the booking's meetingUrl is the event's onlineMeeting.joinUrl: True" in out
    assert re.search(r"to dorothy@example.com +Booked: Office hours on Teams .*\[\+ class\.ics\]", out)
    assert "Grace's link is unchanged: True" in out
    assert "Alan cancels → 202; events for the session in Google Calendar: 0" in out
    assert re.search(r"to grace@example.com +Booked: Python for mentors .*\[\+ class\.ics\]", out)
    assert "the .ics parses: UID cls_" in out
    # And busy times from iCloud (a weekly event, one week skipped) and Google were polled and merged
    assert len(re.findall(r"^ {4}\w{3} \d\d \w{3} 09:00-09:30  apple$", out, re.M)) == 3
    assert re.search(r"^ {4}\w{3} \d\d \w{3} 12:00-13:00  google$", out, re.M)
    # (Microsoft is a busy source too, connected since the Teams chapter: issue 18 item 4)
    assert "sources: {'apple': 'connected', 'google': 'connected', 'microsoft': 'connected'}" in out
    assert "selectedCalendar: teaching-ada@example.com" in out
    # And the availability chapter: busy times remove slots, one of two racing checkouts wins, it is paid
    # and gets its Meet link (issue 15 item 7)
    assert re.search(r"slots Mon .*iCloud standup 09:00-09:30\): 09:30 10:00", out)
    assert re.search(r"slots Wed .*Google 12:00-13:00\): .*11:00 13:00 ", out)
    assert "→ 409 slot_unavailable" in out
    assert re.search(r"POST /private-sessions \(platform\) at the same moment → 201 bookingId bkg_", out)
    assert re.search(r'"meetingUrl": "https://meet\.google\.com/', out)
    # And the canary step found no secret; no password is in anything it wrote
    assert re.search(r"\d+ secrets .* none found", out)
    from devstack import demo

    for secret in (demo.APPLE_PASSWORD, demo.APPLE_REAL_PASSWORD, demo.APPLE_WRONG_PASSWORD, *demo.VAULT_DEMO_TOKENS):
        assert secret not in out
        assert secret not in result.stderr
