"""Our Graph busy client (shared.providers.microsoft.busy) against the emulator: a window longer than
Graph's 62-day getSchedule limit is read in periods the emulator accepts, and every period's items come
back in UTC; a subscription is made, renewed and deleted as the emulator's subscription rules allow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import SecretStr

from devstack.emulators.microsoft import MicrosoftEmulator
from shared.providers.microsoft.busy import MicrosoftBusyClient
from tests.integration.emulators.microsoft.support import Receiver


def test_a_long_window_is_read_in_periods_under_62_days_and_a_subscription_lives(
    emu: MicrosoftEmulator, token: str, receiver: Receiver
) -> None:
    user = next(iter(emu.state.users.values()))
    address = user.mail or user.user_principal_name
    start = datetime.fromtimestamp(emu.state.now(), UTC).replace(microsecond=0)
    at = [start + timedelta(days=d, hours=2) for d in (5, 70, 125)]
    for n, when in enumerate(at):
        emu.seed_event(
            emu.default_calendar_id(address),
            {"subject": f"e{n}", "showAs": "oof" if n == 1 else "busy",
             "start": {"dateTime": when.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
             "end": {"dateTime": (when + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}},
        )  # fmt: skip
    client = MicrosoftBusyClient(api_base=emu.api_base, timeout_s=5, sleep=lambda _: None)
    bearer = SecretStr(token)
    # When 130 days are asked: three getSchedule calls (the emulator refuses 62 days or more), all answered
    before = len(emu.requests_log("/v1.0/me/calendar", "POST"))
    items = client.schedule(bearer, address, start, start + timedelta(days=130))
    assert len(emu.requests_log("/v1.0/me/calendar", "POST")) - before == 3
    assert sorted((i.start, i.status) for i in items) == [(at[0], "busy"), (at[1], "oof"), (at[2], "busy")]
    # A subscription on the default calendar's events is made (handshake passed), renewed, deleted
    sub = client.subscribe(
        bearer, "primary", url=receiver.url, client_state=SecretStr("s" * 43), expiration=start + timedelta(hours=1)
    )
    assert sub.resource == "me/events"
    later = client.renew(bearer, sub.id, start + timedelta(hours=60))
    assert later is not None
    assert later > sub.expiration
    assert client.delete_subscription(bearer, sub.id) is True
    assert client.renew(bearer, sub.id, start + timedelta(hours=2)) is None  # gone: 404
