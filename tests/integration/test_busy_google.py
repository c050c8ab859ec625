"""Google busy-time sync against the Google emulator (freeBusy) with moto (table, KMS, SES).

The selected calendar's busy times, windows split under Google's freeBusy range limit, rate-limit
answers retried or handed back to the queue, a revoked grant, a calendar that is gone.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from devstack.emulators import GoogleEmulator
from devstack.emulators import google as g
from devstack.emulators.common import ForcedFault
from shared.busy.sync import BusySync, TransientSyncError, process_message
from shared.platform import aws
from shared.providers.credentials import CredentialAccessor
from shared.providers.google.calendar import GoogleClient
from shared.providers.oauth import OAuthClient, new_code_verifier, new_state, oauth_app
from shared.queues.busy import SyncJob, SyncReason
from shared.store import Connection, ConnectionStatus, Provider, Store
from shared.store.busy import Block, BusyStore
from shared.vault import OAuthCredential, Vault
from shared.vault.branch_store import DynamoBranchStore
from shared.vault.keys import KeyCache

NOW = datetime(2027, 3, 22, tzinfo=UTC)
FREEBUSY = "/calendar/v3/freeBusy"


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture(scope="module")
def google() -> Iterator[GoogleEmulator]:
    emulator = GoogleEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture
def emu(google: GoogleEmulator) -> GoogleEmulator:
    google.reset()
    return google


@pytest.fixture
def oauth(emu: GoogleEmulator) -> OAuthClient:
    from shared.platform.config import ProviderSettings

    cfg = ProviderSettings.model_validate({k.lower(): v for k, v in emu.environment().items()})
    return OAuthClient(oauth_app(Provider.GOOGLE, cfg), redirect_uri=g.DEFAULT_REDIRECT_URI, sleep=lambda _: None)


@pytest.fixture
def vault(store: Store) -> Vault:
    return Vault(
        kms=aws.client("kms"),
        store=DynamoBranchStore(aws.client("dynamodb"), store.table.name),
        kms_key_id="alias/mentor-connections",
        cache=KeyCache(),
    )


@pytest.fixture
def notified() -> list[tuple[str, Provider]]:
    return []


class Account:
    """A Google account at the emulator, connected for a mentor through a real consent + code exchange."""

    def __init__(
        self, emu: GoogleEmulator, store: Store, vault: Vault, oauth: OAuthClient, *, expires_in: timedelta
    ) -> None:
        self.mentor = f"mentor-{uuid.uuid4().hex[:8]}"
        self.email = f"{self.mentor}@example.com"
        self.teaching = f"teaching-{self.email}"
        emu.add_user(self.email, "Ada Lovelace", calendars=[{"id": self.teaching, "summary": "Teaching"}])
        emu.set_next_consent(self.email)
        state, verifier = new_state(), new_code_verifier()
        resp = httpx.get(
            oauth.authorization_url(state=state, code_verifier=verifier), follow_redirects=False, timeout=5
        )
        code = parse_qs(urlsplit(resp.headers["location"]).query)["code"][0]
        tokens = oauth.exchange_code(code=code, code_verifier=verifier)
        blob = vault.seal_credential(
            OAuthCredential(
                access_token=tokens.access_token,
                refresh_token=tokens.refresh_token,
                expires_at=datetime.now(UTC) + expires_in,
                scope=tokens.scope,
            ),
            mentor_id=self.mentor,
            provider="google",
        )
        store.save_connection(
            Connection(
                mentor_id=self.mentor,
                provider=Provider.GOOGLE,
                account_id=self.email,
                selected_calendar=self.teaching,
                credential=blob,
                connected_at=NOW - timedelta(days=1),
            ),
            expected_version=None,
        )
        self.emu = emu

    def event(self, start: datetime, minutes: int = 60, calendar: str | None = None, **extra: Any) -> None:
        self.emu.seed_event(
            calendar or self.teaching,
            {
                "summary": "private",
                "start": {"dateTime": start.isoformat()},
                "end": {"dateTime": (start + timedelta(minutes=minutes)).isoformat()},
                **extra,
            },
        )

    @property
    def job(self) -> SyncJob:
        return SyncJob(mentor_id=self.mentor, provider=Provider.GOOGLE, reason=SyncReason.SCHEDULE)


@pytest.fixture
def account(emu: GoogleEmulator, store: Store, vault: Vault, oauth: OAuthClient) -> Callable[..., Account]:
    def make(expires_in: timedelta = timedelta(hours=1)) -> Account:
        return Account(emu, store, vault, oauth, expires_in=expires_in)

    return make


@pytest.fixture
def worker(
    emu: GoogleEmulator, store: Store, vault: Vault, oauth: OAuthClient, notified: list[tuple[str, Provider]]
) -> Callable[..., BusySync]:
    def make(*, window: timedelta = timedelta(days=60), max_span: timedelta | None = None) -> BusySync:
        accessor = CredentialAccessor(
            store, vault, {Provider.GOOGLE: oauth}, on_reconnect=lambda m, p: notified.append((m, p))
        )

        def client() -> GoogleClient:
            made = GoogleClient(
                api_base=emu.calendar_base, userinfo_url=emu.userinfo_url, timeout_s=5, sleep=lambda _: None
            )
            if max_span is not None:
                made.max_span = max_span
            return made

        return BusySync(
            store=store,
            busy=BusyStore(store.table),
            tokens=accessor.access_token,
            google=client,
            open_credential=lambda *_: pytest.fail("a Google sync opened an Apple credential"),
            apple_url="http://127.0.0.1:9",
            on_reconnect=lambda m, p: notified.append((m, p)),
            window=window,
            min_interval=timedelta(0),
            clock=lambda: NOW,
        )

    return make


def _blocks(store: Store, account: Account) -> tuple[Block, ...]:
    return BusyStore(store.table).read(account.mentor)[Provider.GOOGLE].blocks


def _freebusy_calls(emu: GoogleEmulator) -> list[dict[str, Any]]:
    return emu.requests_log(FREEBUSY, "POST")


def test_selected_calendar_busy_times_are_stored(
    emu: GoogleEmulator, store: Store, account: Callable[..., Account], worker: Callable[..., BusySync]
) -> None:
    # Given a mentor whose selected calendar is "Teaching": a one-off, a weekly series, a free
    # (transparent) event and one the mentor declined; and an event on the primary calendar
    ada = account()
    ada.event(_utc(2027, 3, 23, 9))
    ada.event(_utc(2027, 3, 24, 17), 90, recurrence=["RRULE:FREQ=WEEKLY;COUNT=2"])
    ada.event(_utc(2027, 3, 25, 12), transparency="transparent")
    ada.event(_utc(2027, 3, 26, 12), attendees=[{"email": ada.teaching, "self": True, "responseStatus": "declined"}])
    ada.event(_utc(2027, 3, 23, 15), calendar=ada.email)
    # When it syncs
    outcome = worker().handle(ada.job)
    # Then the selected calendar's busy times (as Google computes them) are the stored set
    assert outcome == "synced:3"
    assert _blocks(store, ada) == (
        Block(_utc(2027, 3, 23, 9), _utc(2027, 3, 23, 10)),
        Block(_utc(2027, 3, 24, 17), _utc(2027, 3, 24, 18, 30)),
        Block(_utc(2027, 3, 31, 17), _utc(2027, 3, 31, 18, 30)),
    )
    # And one freeBusy request covered the 60-day window, on that calendar only
    (call,) = _freebusy_calls(emu)
    body = call["json"]
    assert body["items"] == [{"id": ada.teaching}]
    assert (body["timeMin"], body["timeMax"]) == ("2027-03-22T00:00:00Z", "2027-05-21T00:00:00Z")


def test_a_long_window_is_split_under_the_freebusy_range_limit(
    emu: GoogleEmulator, store: Store, account: Callable[..., Account], worker: Callable[..., BusySync]
) -> None:
    # Given a 150-day window and busy times early, in the middle and late in it
    ada = account()
    for day in (10, 70, 140):
        ada.event(NOW + timedelta(days=day, hours=9))
    # When it syncs / Then three requests of at most 60 days cover it and every block is found
    assert worker(window=timedelta(days=150)).handle(ada.job) == "synced:3"
    spans = [(c["json"]["timeMin"], c["json"]["timeMax"]) for c in _freebusy_calls(emu)]
    assert spans == [
        ("2027-03-22T00:00:00Z", "2027-05-21T00:00:00Z"),
        ("2027-05-21T00:00:00Z", "2027-07-20T00:00:00Z"),
        ("2027-07-20T00:00:00Z", "2027-08-19T00:00:00Z"),
    ]
    # And a client that asked for the 150 days at once would be refused (Google's limit, ~90 days)
    outcome = worker(window=timedelta(days=150), max_span=timedelta(days=150)).handle(ada.job)
    assert outcome == "failed:refused"
    assert _freebusy_calls(emu)[-1]["status"] == 400


def test_rate_limit_answers_are_retried_in_process(
    emu: GoogleEmulator, store: Store, account: Callable[..., Account], worker: Callable[..., BusySync]
) -> None:
    # Given Google answers the next two freeBusy requests 403 rateLimitExceeded, then 429
    ada = account()
    ada.event(_utc(2027, 3, 23, 9))
    emu.set_faults(
        forced=[
            ForcedFault(status=403, count=1, path_prefix=FREEBUSY, retry_after=0),
            ForcedFault(status=429, count=1, path_prefix=FREEBUSY, retry_after=0),
        ]
    )
    # When it syncs / Then the third attempt got through
    assert worker().handle(ada.job) == "synced:1"
    assert [c["status"] for c in _freebusy_calls(emu)] == [403, 429, 200]


def test_a_lasting_rate_limit_goes_back_to_the_queue_and_keeps_the_blocks(
    emu: GoogleEmulator, store: Store, account: Callable[..., Account], worker: Callable[..., BusySync]
) -> None:
    # Given a synced connection
    ada = account()
    ada.event(_utc(2027, 3, 23, 9))
    sync = worker()
    sync.handle(ada.job)
    # When Google keeps answering 429 with Retry-After: 2
    emu.set_faults(forced=[ForcedFault(status=429, count=100, path_prefix=FREEBUSY, retry_after=2)])
    with pytest.raises(TransientSyncError) as caught:
        sync.handle(ada.job)
    # Then the sync asks to come back after Google's delay, after the in-process attempts
    assert (caught.value.code, caught.value.delay_s) == ("rate_limited", pytest.approx(2, abs=1))
    assert len(_freebusy_calls(emu)) == 1 + 4
    # And the previous blocks stay, with the error noted
    found = BusyStore(store.table).read(ada.mentor)[Provider.GOOGLE]
    assert (len(found.blocks), found.head.error) == (1, "rate_limited")
    # And through the message handler: failed (retried by SQS) until the last attempt, then acknowledged
    body = ada.job.body()
    with pytest.raises(TransientSyncError):
        process_message(body, receive_count=1, worker=sync)
    assert process_message(body, receive_count=3, worker=sync) == "gave_up:rate_limited"


def test_a_revoked_grant_marks_needs_reconnect_once(
    emu: GoogleEmulator,
    store: Store,
    account: Callable[..., Account],
    worker: Callable[..., BusySync],
    notified: list[tuple[str, Provider]],
) -> None:
    # Given a connection whose access token expired and whose grant the user revoked at Google
    ada = account(expires_in=timedelta(minutes=-1))
    emu.revoke_user_tokens(ada.email)
    # When it syncs twice
    outcomes = [worker().handle(ada.job), worker().handle(ada.job)]
    # Then the refresh's invalid_grant flagged the connection once; nothing was asked of freeBusy
    assert outcomes == ["skipped:needs_reconnect", "skipped:needs_reconnect"]
    conn = store.get_connection(ada.mentor, Provider.GOOGLE)
    assert conn is not None
    assert conn.status is ConnectionStatus.NEEDS_RECONNECT
    assert notified == [(ada.mentor, Provider.GOOGLE)]
    assert _freebusy_calls(emu) == []


def test_a_calendar_that_is_gone_is_recorded_not_retried(
    emu: GoogleEmulator, store: Store, account: Callable[..., Account], worker: Callable[..., BusySync]
) -> None:
    # Given a selected calendar the account no longer has
    ada = account()
    conn = store.get_connection(ada.mentor, Provider.GOOGLE)
    assert conn is not None
    store.update_connection(ada.mentor, Provider.GOOGLE, expected_version=conn.version, selected_calendar="gone@x")
    # When it syncs / Then the refusal is recorded and the message acknowledged
    assert worker().handle(ada.job) == "failed:calendar_not_found"
    head = BusyStore(store.table).head(ada.mentor, Provider.GOOGLE)
    assert head is not None
    assert head.error == "calendar_not_found"


def test_a_401_on_freebusy_forces_one_refresh_and_the_sync_succeeds(
    emu: GoogleEmulator,
    store: Store,
    account: Callable[..., Account],
    worker: Callable[..., BusySync],
    notified: list[tuple[str, Provider]],
) -> None:
    # Given a token we believe valid for an hour that Google invalidated early
    ada = account()
    ada.event(_utc(2027, 3, 23, 9))
    assert emu.expire_access_tokens(email=ada.email) >= 1
    before = emu.token_calls("refresh_token")
    # When it syncs
    outcome = worker().handle(ada.job)
    # Then freeBusy's 401 forced exactly one refresh, the retry succeeded and the connection stays connected
    assert outcome == "synced:1"
    assert emu.token_calls("refresh_token") - before == 1
    assert len(_freebusy_calls(emu)) == 2
    conn = store.get_connection(ada.mentor, Provider.GOOGLE)
    assert conn is not None
    assert conn.status is ConnectionStatus.CONNECTED
    assert notified == []


def test_a_401_then_a_dead_grant_marks_needs_reconnect(
    emu: GoogleEmulator,
    store: Store,
    account: Callable[..., Account],
    worker: Callable[..., BusySync],
    notified: list[tuple[str, Provider]],
) -> None:
    # Given a token we believe valid whose grant the user revoked at Google
    ada = account()
    emu.revoke_user_tokens(ada.email)
    # When it syncs / Then the 401's forced refresh hits invalid_grant: needs_reconnect, one e-mail
    assert worker().handle(ada.job) == "skipped:needs_reconnect"
    conn = store.get_connection(ada.mentor, Provider.GOOGLE)
    assert conn is not None
    assert conn.status is ConnectionStatus.NEEDS_RECONNECT
    assert notified == [(ada.mentor, Provider.GOOGLE)]
    assert len(_freebusy_calls(emu)) == 1
