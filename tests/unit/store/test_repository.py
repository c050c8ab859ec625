"""Store: mentors and connections with conditional writes (moto in-process)."""

from __future__ import annotations

import threading

import pytest
from pydantic import ValidationError

from shared.store import ConflictError, Connection, ConnectionStatus, Plan, Provider, Store


def _google(mentor: str = "m1", **kw: object) -> Connection:
    return Connection(
        mentor_id=mentor,
        provider=Provider.GOOGLE,
        account_label="Connected as ada@example.com",
        selected_calendar="primary",
        credential=b"sealed-bytes",
        **kw,  # type: ignore[arg-type]
    )


def test_mentor_upsert_creates_then_updates_fields(store: Store) -> None:
    # Given no profile
    assert store.get_mentor("m1") is None
    # When the mentor is created, then its plan is changed
    created = store.upsert_mentor("m1", plan="pro", email="ada@example.com", timezone="Europe/Berlin")
    updated = store.upsert_mentor("m1", plan="premium")
    # Then the unchanged fields stay and the version moves on
    assert created.version == 1
    assert updated.plan is Plan.PREMIUM
    assert updated.email == "ada@example.com"
    assert updated.timezone == "Europe/Berlin"
    assert updated.version == 2
    assert store.get_mentor("m1") == updated


def test_mentor_rejects_bad_fields_before_writing(store: Store) -> None:
    # Given / When a bad timezone, plan or unknown field is written / Then nothing is stored
    with pytest.raises(ValidationError, match="time zone"):
        store.upsert_mentor("m1", timezone="Mars/Olympus")
    with pytest.raises(ValidationError):
        store.upsert_mentor("m1", plan="gold")
    with pytest.raises(ValueError, match="unknown mentor fields"):
        store.upsert_mentor("m1", credit_card="4242")
    assert store.get_mentor("m1") is None


def test_connection_create_is_conditional(store: Store) -> None:
    # Given a stored connection
    saved = store.save_connection(_google(), expected_version=None)
    assert saved.version == 1
    # When another writer also tries to create it / Then it loses
    with pytest.raises(ConflictError):
        store.save_connection(_google(), expected_version=None)
    assert store.get_connection("m1", "google") == saved


def test_connection_update_uses_optimistic_locking(store: Store) -> None:
    # Given a connection at version 1
    store.save_connection(_google(), expected_version=None)
    # When one writer updates it with the right version
    after = store.update_connection("m1", Provider.GOOGLE, expected_version=1, selected_calendar="work")
    # Then a second writer holding the old version fails, and nothing it wanted is written
    with pytest.raises(ConflictError):
        store.update_connection("m1", Provider.GOOGLE, expected_version=1, selected_calendar="stale")
    assert after.version == 2
    current = store.get_connection("m1", Provider.GOOGLE)
    assert current is not None
    assert current.selected_calendar == "work"
    assert current.credential == b"sealed-bytes"


@pytest.mark.usefixtures("atomic_dynamodb")
def test_racing_writers_exactly_one_wins(store: Store) -> None:
    # Given a connection at version 1 and 8 writers that all read version 1
    store.save_connection(_google(), expected_version=None)
    wins: list[str] = []
    losses: list[str] = []

    def write(n: int) -> None:
        try:
            store.update_connection("m1", "google", expected_version=1, selected_calendar=f"cal-{n}")
            wins.append(f"cal-{n}")
        except ConflictError:
            losses.append(f"cal-{n}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    # When they all write at once
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then exactly one succeeded and its value is the stored one
    assert len(wins) == 1
    assert len(losses) == 7
    stored = store.get_connection("m1", "google")
    assert stored is not None
    assert stored.selected_calendar == wins[0]


def test_list_connections_and_sparse_sync_index(store: Store) -> None:
    # Given google + apple (synced) and zoom (not synced) connections
    store.save_connection(_google(), expected_version=None)
    store.save_connection(
        Connection(mentor_id="m1", provider=Provider.ZOOM, account_label="Connected as Ada", plan_type=1),
        expected_version=None,
    )
    store.save_connection(Connection(mentor_id="m1", provider=Provider.APPLE), expected_version=None)
    store.save_connection(_google("m2"), expected_version=None)
    # When listing and reading the sync index
    listed = store.list_connections("m1")
    google_sync = [i["GSI1SK"] for i in store.table.query("SYNC#google", index="GSI1")]
    zoom_sync = list(store.table.query("SYNC#zoom", index="GSI1"))
    # Then the mentor's three are listed and only synced providers are indexed
    assert sorted(c.provider.value for c in listed) == ["apple", "google", "zoom"]
    assert sorted(google_sync) == ["m1", "m2"]
    assert zoom_sync == []


def test_needs_reconnect_wins_once_and_drops_credential(store: Store) -> None:
    # Given a connected google connection with a credential
    store.save_connection(_google(), expected_version=None)
    # When two workers notice the revoked token
    first = store.mark_needs_reconnect("m1", "google", "invalid_grant")
    second = store.mark_needs_reconnect("m1", "google", "invalid_grant")
    # Then only the first flips it (one e-mail), the credential is gone, sync stops
    assert (first, second) == (True, False)
    conn = store.get_connection("m1", "google")
    assert conn is not None
    assert conn.status is ConnectionStatus.NEEDS_RECONNECT
    assert conn.status_reason == "invalid_grant"
    assert conn.credential is None
    assert list(store.table.query("SYNC#google", index="GSI1")) == []


def test_delete_connection_removes_everything(store: Store) -> None:
    # Given a connection / When it is deleted twice
    store.save_connection(_google(), expected_version=None)
    # Then the first delete reports it existed, the second that nothing was there
    assert store.delete_connection("m1", "google") is True
    assert store.delete_connection("m1", "google") is False
    assert store.get_connection("m1", "google") is None
    raw = store.table.get("MENTOR#m1", "CONN#google")
    assert raw is None


def test_query_pages_through_many_items(store: Store) -> None:
    # Given 250 synced connections (more than one page of 100)
    for n in range(250):
        store.save_connection(_google(f"m{n:03d}"), expected_version=None)
    # When the sync index is read / Then every one comes back, in order
    seen = [i["GSI1SK"] for i in store.table.query("SYNC#google", index="GSI1", page_size=100)]
    assert seen == [f"m{n:03d}" for n in range(250)]


def test_zoom_connections_are_found_by_zoom_user_through_every_status(store: Store) -> None:
    # Given a Zoom connection with the Zoom user id as its account id
    store.save_connection(
        Connection(mentor_id="m1", provider=Provider.ZOOM, account_id="zU-42", credential=b"x"), expected_version=None
    )

    def owners() -> list[str]:
        return [i["GSI1SK"] for i in store.table.query("ZOOMUSER#zU-42", index="GSI1")]

    # Then the user lookup finds it, also after its token was revoked (needs_reconnect)
    assert owners() == ["m1"]
    assert store.mark_needs_reconnect("m1", Provider.ZOOM, "invalid_grant") is True
    assert owners() == ["m1"]
    # And a status update leaves the lookup alone; deleting removes it
    current = store.get_connection("m1", Provider.ZOOM)
    assert current is not None
    store.update_connection("m1", Provider.ZOOM, expected_version=current.version, status=ConnectionStatus.CONNECTED)
    assert owners() == ["m1"]
    store.delete_connection("m1", Provider.ZOOM)
    assert owners() == []
