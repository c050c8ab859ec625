"""Latency spikes of the emulators' fault knobs (``spike_rate`` / ``spike_ms`` / ``spike_min_ms``).

A fraction of requests is held an extra, random delay before it is answered (or faulted), drawn
from its own seeded RNG: spikes are reproducible and switching them on does not change which
requests get an injected 429 / 500.
"""

from __future__ import annotations

import httpx
import pytest

from devstack.emulators import GoogleEmulator, ZoomEmulator
from devstack.emulators.common import FaultInjector


def test_a_fraction_of_requests_is_held_within_the_spike_bounds(zoom: ZoomEmulator, http: httpx.Client) -> None:
    # Given 30 % of requests spiking by 40-80 ms
    zoom.set_faults(spike_rate=0.3, spike_min_ms=40, spike_ms=80, seed=11)
    # When 40 requests are made
    for _ in range(40):
        http.get(zoom.api_base + "/users/me")
    log = zoom.requests_log(path_prefix="/v2/users/me")
    spiked = [e for e in log if e["spike_ms"]]
    # Then roughly 30 % spiked, each within the bounds and really held that long; the others not
    assert 4 <= len(spiked) <= 22, len(spiked)
    assert all(40 <= e["spike_ms"] <= 80 and e["elapsed_ms"] >= e["spike_ms"] - 5 for e in spiked)
    assert all(e["spike_ms"] == 0 for e in log if e not in spiked)
    # And the snapshot lists the same spikes
    assert [s["spike_ms"] for s in zoom.snapshot()["latency_spikes"]] == [e["spike_ms"] for e in spiked]
    # And admin routes are never held
    zoom.set_faults(spike_rate=1.0, spike_min_ms=500, spike_ms=500)
    assert http.get(f"{zoom.base_url}/_admin/health").elapsed.total_seconds() < 0.4


def test_spikes_respect_the_paths_filter_and_are_cleared(google: GoogleEmulator, http: httpx.Client) -> None:
    # Given every request to the token endpoint spikes, nothing else
    google.set_faults(spike_rate=1.0, spike_min_ms=30, spike_ms=30, paths=["/token"])
    http.post(google.base_url + "/token", data={"grant_type": "refresh_token", "refresh_token": "nope"})
    http.get(google.calendar_base + "/users/me/calendarList")
    # Then only the token call was held
    assert [(e["path"], e["spike_ms"]) for e in google.requests_log() if e["spike_ms"]] == [("/token", 30)]
    # And clear_faults switches spikes off and forgets them
    google.clear_faults()
    assert google.snapshot()["latency_spikes"] == []
    http.post(google.base_url + "/token", data={"grant_type": "refresh_token", "refresh_token": "nope"})
    assert google.requests_log(path_prefix="/token")[-1]["spike_ms"] == 0


def test_spikes_are_seeded_and_leave_the_fault_sequence_alone() -> None:
    def run(**spikes: object) -> tuple[list[object], list[int]]:
        faults = FaultInjector()
        faults.configure(rate_429=0.1, rate_500=0.1, seed=7, **spikes)
        decided = []
        held = []
        for n in range(200):
            held.append(faults.delay_seconds("GET", f"/x/{n}")[1])
            decided.append(faults.decide("GET", f"/x/{n}"))
        return decided, held

    plain_faults, plain_held = run()
    spiky_faults, spiky_held = run(spike_rate=0.2, spike_min_ms=500, spike_ms=2000)
    # The same 429 / 500 answers with or without spikes, and the same spikes for the same seed
    assert spiky_faults == plain_faults
    assert plain_held == [0] * 200
    assert spiky_held == run(spike_rate=0.2, spike_min_ms=500, spike_ms=2000)[1]
    assert 20 <= sum(1 for h in spiky_held if h) <= 60
    assert all(500 <= h <= 2000 for h in spiky_held if h)


@pytest.mark.parametrize(
    "bad",
    [
        {"spike_rate": 1.5, "spike_ms": 10},
        {"spike_rate": 0.1, "spike_ms": 0},  # no spike length
        {"spike_rate": 0.1, "spike_min_ms": 50, "spike_ms": 10},
        {"spike_min_ms": -1},
    ],
)
def test_invalid_spike_settings_are_refused(bad: dict[str, object], zoom: ZoomEmulator, http: httpx.Client) -> None:
    zoom.set_faults(spike_rate=0.5, spike_ms=20)
    resp = http.post(f"{zoom.base_url}/_admin/faults", json=bad)
    assert resp.status_code == 400
    cfg = http.get(f"{zoom.base_url}/_admin/faults").json()
    assert (cfg["spike_rate"], cfg["spike_ms"], cfg["spike_min_ms"]) == (0.5, 20, 0)
