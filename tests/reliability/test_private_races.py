"""Races on a mentor's time through the local gateway (PRODUCT.md §2.10, issue 15):

* 30 ``POST /private-sessions`` at the same moment for pairwise-overlapping times → exactly one 201,
  29 x 409 ``slot_unavailable``, one span in the timeline;
* 30 at the same moment for 30 disjoint (touching) half-hours → 30 x 201, all kept;
* a class created at the same moment as a private session over the same time, 8 rounds: a private
  session that won is always named by the class's ``calendar_conflict`` warning (it was written
  first); otherwise the private session was refused — never both silently;
* a class created over a held private session warns, naming it; a session moved onto one warns too.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
from classes_support import create, in_person, tables
from private_support import BERLIN, at, body, set_rules, slot_starts

from devstack.stack import LocalStack

RACERS = 30


def _day(days: int) -> datetime:
    d = (datetime.now(BERLIN) + timedelta(days=days)).date()
    return datetime(d.year, d.month, d.day, tzinfo=BERLIN)


def _race(local_stack: LocalStack, platform: dict[str, str], bodies: list[dict[str, Any]]) -> list[tuple[int, Any]]:
    gate = threading.Barrier(len(bodies))

    def post(sent: dict[str, Any]) -> tuple[int, Any]:
        with httpx.Client(base_url=local_stack.api_url, timeout=60, headers=platform) as client:
            gate.wait()
            resp = client.post("/private-sessions", json=sent)
            return resp.status_code, resp.json()

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(post, bodies))


def test_thirty_overlapping_requests_one_wins(
    api: httpx.Client, headers: dict[str, str], platform_headers: dict[str, str], local_stack: LocalStack, mentor: str
) -> None:
    # Given 09:00-17:00 and four 2-hour times that all overlap each other (10:00 … 11:30 starts)
    set_rules(api, headers)
    base = _day(6)
    starts = [at(base, 10), at(base, 10, 30), at(base, 11), at(base, 11, 30)]
    # When 30 requests race for them
    answers = _race(local_stack, platform_headers, [body(mentor, starts[n % 4], 120) for n in range(RACERS)])
    # Then exactly one wins; the others are told the time is taken
    assert Counter(status for status, _ in answers) == Counter({201: 1, 409: RACERS - 1}), answers
    assert {b["error"]["code"] for status, b in answers if status == 409} == {"slot_unavailable"}
    # And the timeline holds exactly one span, the winner's
    _, schedule = tables(local_stack)
    lo, hi = int(at(base, 0).timestamp()), int(at(base, 23).timestamp())
    spans = schedule.timeline.spans_between(mentor, lo, hi, consistent=True)
    (winner,) = [b for status, b in answers if status == 201]
    assert [s.booking_id for s in spans] == [winner["bookingId"]]


def test_thirty_disjoint_requests_all_win(
    api: httpx.Client, headers: dict[str, str], platform_headers: dict[str, str], local_stack: LocalStack, mentor: str
) -> None:
    # Given a whole day open and 30 touching half-hours 06:00-21:00 (two per hour bucket)
    set_rules(
        api,
        headers,
        weekly={d: [{"start": "00:00", "end": "24:00"}] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    )
    base = _day(7)
    starts = [at(base, 6) + timedelta(minutes=30 * n) for n in range(RACERS)]
    # When 30 requests race, one per half-hour
    answers = _race(local_stack, platform_headers, [body(mentor, s, 30) for s in starts])
    # Then all 30 are booked, and those half-hours are gone from the slots
    assert Counter(status for status, _ in answers) == Counter({201: RACERS}), answers
    remaining = slot_starts(api, platform_headers, mentor, base, 30)
    assert not {s.strftime("%H:%M") for s in starts} & set(remaining)
    assert "05:30" in remaining
    assert "21:00" in remaining


def test_a_class_and_a_private_session_created_at_the_same_moment_never_overlap_silently(
    api: httpx.Client,
    headers: dict[str, str],
    platform_headers: dict[str, str],
    local_stack: LocalStack,
    mentor: str,
) -> None:
    set_rules(api, headers)
    base = _day(8)
    outcomes: Counter[str] = Counter()
    for hour in range(9, 17):  # 8 rounds, one hour each; the class starts a little later each round
        gate = threading.Barrier(2)
        start = at(base, hour)

        def private(at_: datetime = start, gate: threading.Barrier = gate) -> tuple[int, Any]:
            with httpx.Client(base_url=local_stack.api_url, timeout=60, headers=platform_headers) as client:
                gate.wait()
                resp = client.post("/private-sessions", json=body(mentor, at_, 60))
                return resp.status_code, resp.json()

        def klass(
            at_: datetime = start, gate: threading.Barrier = gate, lag: float = (hour - 9) * 0.012
        ) -> tuple[int, Any]:
            with httpx.Client(base_url=local_stack.api_url, timeout=60, headers=headers) as client:
                gate.wait()
                time.sleep(lag)  # staggered, so that both orders happen over the rounds
                resp = client.post("/classes", json=in_person(starts=[at_.isoformat()], durationMinutes=60))
                return resp.status_code, resp.json()

        with ThreadPoolExecutor(2) as pool:
            p, c = pool.submit(private), pool.submit(klass)
            (p_status, p_body), (c_status, c_body) = p.result(), c.result()
        # The class is always created (the mentor decides)
        assert c_status == 201, c_body
        named = {
            conflict.get("sessionId")
            for w in c_body["warnings"]
            if w["code"] == "calendar_conflict"
            for s in w["sessions"]
            for conflict in s["conflicts"]
        }
        if p_status == 201:
            # The private session won: it was written first, and the class's answer names it
            assert p_body["sessionId"] in named, (p_body, c_body)
            outcomes["private first"] += 1
        else:
            # The class was there first (or the private write saw it on its re-check): refused
            assert (p_status, p_body["error"]["code"]) == (409, "slot_unavailable"), p_body
            assert named == set()
            outcomes["class first"] += 1
    print(f"class vs private races: {dict(outcomes)}")
    assert sum(outcomes.values()) == 8


def test_classes_and_moves_over_a_private_session_are_warned_naming_it(
    api: httpx.Client, headers: dict[str, str], platform_headers: dict[str, str], mentor: str
) -> None:
    set_rules(api, headers)
    base = _day(9)
    held = api.post("/private-sessions", json=body(mentor, at(base, 14), 60), headers=platform_headers)
    assert held.status_code == 201, held.text
    sid = held.json()["sessionId"]
    # When the mentor creates a class at 14:30 and one at 16:00
    over = create(api, headers, in_person(starts=[at(base, 14, 30).isoformat()], durationMinutes=60))
    clear = create(api, headers, in_person(starts=[at(base, 16).isoformat()], durationMinutes=60))
    # Then the first is created with a warning naming the private session, the second without
    (warning,) = [w for w in over["warnings"] if w["code"] == "calendar_conflict"]
    assert warning["sessions"][0]["sessionId"] == over["sessions"][0]["sessionId"]
    assert warning["sessions"][0]["conflicts"] == [
        {
            "kind": "private_session",
            "sessionId": sid,
            "start": at(base, 14).isoformat(),
            "end": at(base, 15).isoformat(),
        }
    ]
    assert [w["code"] for w in clear["warnings"]] == []
    # When the clear class's session moves onto the private session / Then the answer warns too
    moved = api.patch(
        f"/classes/{clear['classId']}/sessions/{clear['sessions'][0]['sessionId']}",
        json={"start": at(base, 13, 30).isoformat()},
        headers=headers,
    )
    assert moved.status_code == 200, moved.text
    assert [w["code"] for w in moved.json()["warnings"]] == ["calendar_conflict"]
    # And moving it away again answers no warning
    away = api.patch(
        f"/classes/{clear['classId']}/sessions/{clear['sessions'][0]['sessionId']}",
        json={"start": at(base, 16).isoformat()},
        headers=headers,
    )
    assert away.json()["warnings"] == []
