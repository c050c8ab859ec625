"""Branch keys and the key cache: KMS call counts, cache bounds, the branch-creation race, periods."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from vault_fakes import TABLE, FakeClock, FakeNow

from shared.vault import (
    BranchRecord,
    DynamoBranchStore,
    InMemoryBranchStore,
    KeyCache,
    OAuthCredential,
    Vault,
    VaultIntegrityError,
    VaultUnavailableError,
)
from shared.vault.keys import branch_period, encryption_context


def oauth(i: int) -> OAuthCredential:
    return OAuthCredential(
        access_token=f"ya29.access-{i:04d}-xxxxxxxx",
        refresh_token=f"1//refresh-{i:04d}-xxxxxxxx",
        expires_at=datetime(2026, 11, 21, 13, 0, tzinfo=UTC),
        scope="https://www.googleapis.com/auth/calendar.events",
    )


def vault_items(ddb: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ddb.query(
        TableName=TABLE,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": "VAULT"}},
        ConsistentRead=True,
    )["Items"]
    return items


# --- KMS call counts -------------------------------------------------------------------------------


def test_thousand_opens_in_a_warm_process_make_one_kms_call(
    make_vault: Callable[..., Vault], kms_calls: Counter[str], ddb: Any
) -> None:
    # Given 1,000 credentials of 1,000 different mentors, sealed by one process
    writer = make_vault()
    blobs = {
        f"mentor-{i:04d}": writer.seal_credential(oauth(i), mentor_id=f"mentor-{i:04d}", provider="google")
        for i in range(1_000)
    }
    # (sealing 1,000 records cost one GenerateDataKey and nothing else)
    assert kms_calls == Counter({"GenerateDataKey": 1})
    # And another warm process with its own, empty cache (default bounds: 300 s, 1,000 uses)
    reader = make_vault(cache=KeyCache(max_age_s=300.0, max_uses=1_000))
    kms_calls.clear()
    ddb_calls: Counter[str] = Counter()
    ddb.meta.events.register("before-call.dynamodb", lambda event_name, **_: ddb_calls.update([event_name]))
    # When it opens all 1,000
    opened = {m: reader.open_credential(blob, mentor_id=m, provider="google") for m, blob in blobs.items()}
    # Then it made exactly one KMS call (a Decrypt of the month's branch key), far under the limit of 10
    assert kms_calls == Counter({"Decrypt": 1})
    assert sum(kms_calls.values()) <= 10
    # And opening never needed the branch item: the wrapped key travels in each blob
    assert ddb_calls == Counter()
    assert isinstance(opened["mentor-0042"], OAuthCredential)
    assert opened["mentor-0042"].access_token.get_secret_value() == "ya29.access-0042-xxxxxxxx"


def test_a_fresh_process_sealing_reuses_the_shared_branch_key(
    make_vault: Callable[..., Vault], kms_calls: Counter[str]
) -> None:
    # Given a branch key created by a first process
    make_vault().seal(b"first", mentor_id="m-0", provider="zoom")
    assert kms_calls == Counter({"GenerateDataKey": 1})
    # When a second process seals 500 records in the same period
    second = make_vault()
    for i in range(500):
        second.seal(b"x", mentor_id=f"m-{i}", provider="zoom")
    # Then it unwrapped the shared key once and never generated another one
    assert kms_calls == Counter({"GenerateDataKey": 1, "Decrypt": 1})


def test_the_current_branch_item_is_reread_once_per_cache_age(vault: Vault, ddb: Any, clock: FakeClock) -> None:
    # Given a vault that has sealed once
    vault.seal(b"x", mentor_id="m", provider="google")
    calls: Counter[str] = Counter()
    ddb.meta.events.register("before-call.dynamodb", lambda event_name, **_: calls.update([event_name]))
    # When it seals 100 more within the cache age, then once more after it
    for _ in range(100):
        vault.seal(b"x", mentor_id="m", provider="google")
    assert calls == Counter()
    clock.advance(301)
    vault.seal(b"x", mentor_id="m", provider="google")
    # Then the branch item was read once more (strongly consistent GetItem), nothing else
    assert calls == Counter({"before-call.dynamodb.GetItem": 1})


# --- cache bounds ----------------------------------------------------------------------------------


def test_cache_entries_expire_by_age() -> None:
    # Given a cache with a 300 s age limit and an entry
    clock = FakeClock()
    cache = KeyCache(max_age_s=300, max_uses=1000, clock=clock)
    cache.put(b"k", b"v")
    # When 299.9 s pass, it is still served; at 300 s it is gone
    clock.advance(299.9)
    assert cache.get(b"k") == b"v"
    clock.advance(0.1)
    assert cache.get(b"k") is None
    assert cache.stats().expired == 1


def test_cache_entries_expire_by_use_count() -> None:
    # Given a cache serving each entry at most 3 times, and a loader
    cache = KeyCache(max_uses=3, clock=FakeClock())
    loads: list[int] = []

    def load() -> bytes:
        loads.append(1)
        return b"v"

    # When the key is asked for 7 times
    values = [cache.get_or_load(b"k", load) for _ in range(7)]
    # Then it was loaded on uses 1, 4 and 7 (the load counts as a use)
    assert values == [b"v"] * 7
    assert len(loads) == 3
    assert cache.stats().hits == 4


def test_cache_is_bounded_in_entries_lru() -> None:
    # Given a cache of at most 2 entries
    cache = KeyCache(max_entries=2, clock=FakeClock())
    cache.put(b"a", b"1")
    cache.put(b"b", b"2")
    assert cache.get(b"a") == b"1"  # "a" is now the most recently used
    # When a third is stored
    cache.put(b"c", b"3")
    # Then the least recently used one ("b") was dropped
    assert (cache.get(b"a"), cache.get(b"b"), cache.get(b"c")) == (b"1", None, b"3")
    assert len(cache) == 2
    assert "v" not in repr(cache).replace("max_", "")  # repr shows sizes only


def test_cache_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        KeyCache(max_uses=0)


def test_concurrent_misses_load_once() -> None:
    # Given a slow loader and 8 threads missing the same key at once
    cache = KeyCache(clock=FakeClock())
    loads: list[int] = []
    gate = threading.Event()

    def load() -> bytes:
        loads.append(1)
        gate.wait(5)
        return b"v"

    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_load(b"k", load))) for _ in range(8)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    # Then the loader ran once (single flight) and every thread got the value
    assert results == [b"v"] * 8
    assert len(loads) == 1


def test_vault_calls_kms_again_after_the_cached_key_ages_out(
    make_vault: Callable[..., Vault], kms_calls: Counter[str], clock: FakeClock
) -> None:
    # Given a blob, and a reader process that has unwrapped its branch key once
    blob = make_vault().seal(b"secret", mentor_id="m", provider="google")
    reader = make_vault(cache=KeyCache(max_age_s=300, max_uses=1000, clock=clock))
    kms_calls.clear()
    reader.open(blob, mentor_id="m", provider="google")
    reader.open(blob, mentor_id="m", provider="google")
    assert kms_calls == Counter({"Decrypt": 1})
    # When the cache age passes
    clock.advance(300)
    reader.open(blob, mentor_id="m", provider="google")
    # Then KMS is called again
    assert kms_calls == Counter({"Decrypt": 2})


def test_vault_calls_kms_again_after_the_cached_key_is_used_up(
    make_vault: Callable[..., Vault], kms_calls: Counter[str], clock: FakeClock
) -> None:
    # Given a blob, and a reader whose cache serves a key at most 5 times
    blob = make_vault().seal(b"secret", mentor_id="m", provider="google")
    reader = make_vault(cache=KeyCache(max_age_s=300, max_uses=5, clock=clock))
    kms_calls.clear()
    # When it opens the blob 5 times, then a 6th
    for _ in range(5):
        reader.open(blob, mentor_id="m", provider="google")
    assert kms_calls == Counter({"Decrypt": 1})
    reader.open(blob, mentor_id="m", provider="google")
    # Then the 6th needed KMS again
    assert kms_calls == Counter({"Decrypt": 2})


# --- the branch item -------------------------------------------------------------------------------


class RacingStore:
    """Lets two processes both see "no branch yet" before either claims it."""

    def __init__(self, inner: DynamoBranchStore, barrier: threading.Barrier, service_lock: threading.Lock) -> None:
        self.inner, self.barrier, self.service_lock = inner, barrier, service_lock
        self.raced = False

    def get(self, branch_id: str) -> BranchRecord | None:
        found = self.inner.get(branch_id)
        if not self.raced:
            self.raced = True
            self.barrier.wait(10)
        return found

    def claim(self, record: BranchRecord) -> BranchRecord:
        # DynamoDB applies a conditional put atomically; moto in-process does not promise to across
        # threads, so the service boundary is serialised here (the vault's own code is not).
        with self.service_lock:
            return self.inner.claim(record)


def test_two_processes_racing_in_one_period_share_one_branch_item(
    make_vault: Callable[..., Vault], store: DynamoBranchStore, ddb: Any, kms_calls: Counter[str]
) -> None:
    # Given two processes that both find no branch key for the period
    barrier, lock = threading.Barrier(2), threading.Lock()
    vaults = [make_vault(store=RacingStore(store, barrier, lock), cache=KeyCache()) for _ in range(2)]
    blobs: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def seal(i: int) -> None:
        try:
            blobs[i] = vaults[i].seal(f"secret-{i}".encode(), mentor_id=f"m-{i}", provider="google")
        except BaseException as exc:
            errors.append(exc)

    # When they seal concurrently
    threads = [threading.Thread(target=seal, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == []
    # Then both generated a key, but only one branch item exists, and both used the winner's key
    assert kms_calls["GenerateDataKey"] == 2
    items = vault_items(ddb)
    assert len(items) == 1
    stored = bytes(items[0]["wrapped_key"]["B"])
    assert {v.inspect(blobs[i]).wrapped_key for i, v in enumerate(vaults)} == {stored}
    assert all(v.keyring.current_record().wrapped_key == stored for v in vaults)
    # And each process opens the other's blob
    assert vaults[0].open(blobs[1], mentor_id="m-1", provider="google") == b"secret-1"
    assert vaults[1].open(blobs[0], mentor_id="m-0", provider="google") == b"secret-0"


def test_many_processes_sealing_at_once_end_with_one_branch_item(
    make_vault: Callable[..., Vault], store: DynamoBranchStore, ddb: Any
) -> None:
    # Given 6 processes starting together
    lock = threading.Lock()
    barrier = threading.Barrier(6)
    vaults = [make_vault(store=RacingStore(store, barrier, lock), cache=KeyCache()) for _ in range(6)]
    out: list[tuple[int, bytes]] = []

    def work(i: int) -> None:
        for j in range(20):
            out.append((i, vaults[i].seal(b"s", mentor_id=f"m{i}-{j}", provider="zoom")))

    # When each seals 20 records concurrently
    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # Then there is one branch item, every blob uses it, and any process opens any blob
    items = vault_items(ddb)
    assert len(items) == 1
    assert len(out) == 120
    assert {vaults[0].inspect(b).wrapped_key for _, b in out} == {bytes(items[0]["wrapped_key"]["B"])}
    for n, (i, blob) in enumerate(out):
        j = [b for k, b in out if k == i].index(blob)
        assert vaults[(i + 1) % 6].open(blob, mentor_id=f"m{i}-{j}", provider="zoom") == b"s", n


def test_the_branch_item_holds_only_the_wrapped_key(vault: Vault, ddb: Any, kms: Any, key_arn: str) -> None:
    # Given a vault that sealed a record in November 2026
    vault.seal(b"x", mentor_id="m", provider="google")
    plaintext_key = vault.keyring.current().key
    # When the branch item is read
    (item,) = vault_items(ddb)
    # Then it is PK=VAULT, SK=BRANCH#2026-11, with the KMS key and the wrapped key only
    assert item["SK"] == {"S": "BRANCH#2026-11"}
    assert set(item) == {"PK", "SK", "kms_key_id", "key_arn", "wrapped_key", "created_at"}
    assert item["key_arn"] == {"S": key_arn}
    assert plaintext_key not in repr(item).encode()
    assert plaintext_key not in bytes(item["wrapped_key"]["B"])
    # And the wrapped key is bound to its KMS encryption context (app, purpose, branch)
    wrapped = bytes(item["wrapped_key"]["B"])
    right = kms.decrypt(CiphertextBlob=wrapped, KeyId=key_arn, EncryptionContext=encryption_context("2026-11"))
    assert right["Plaintext"] == plaintext_key
    with pytest.raises(ClientError, match="InvalidCiphertext"):
        kms.decrypt(CiphertextBlob=wrapped, KeyId=key_arn, EncryptionContext=encryption_context("2026-12"))


def test_a_new_period_starts_a_new_branch(vault: Vault, now: FakeNow, ddb: Any, kms_calls: Counter[str]) -> None:
    # Given a blob sealed in November
    november = vault.seal(b"old", mentor_id="m", provider="google")
    # When the month turns and the vault seals again
    now.when += timedelta(days=10)
    december = vault.seal(b"new", mentor_id="m", provider="google")
    # Then a second branch key exists (one GenerateDataKey per period), and both blobs open
    assert kms_calls["GenerateDataKey"] == 2
    assert sorted(i["SK"]["S"] for i in vault_items(ddb)) == ["BRANCH#2026-11", "BRANCH#2026-12"]
    assert (vault.inspect(november).branch_id, vault.inspect(december).branch_id) == ("2026-11", "2026-12")
    assert vault.open(november, mentor_id="m", provider="google") == b"old"
    # And the November blob is re-sealed into December
    resealed = vault.reseal(november, mentor_id="m", provider="google")
    assert resealed is not None
    assert vault.inspect(resealed).branch_id == "2026-12"
    assert vault.reseal(december, mentor_id="m", provider="google") is None


@pytest.mark.parametrize(("period", "expected"), [("day", "2026-03-01"), ("month", "2026-03"), ("year", "2026")])
def test_branch_period(period: Any, expected: str) -> None:
    # Given 2026-02-28 23:30 at UTC-01:00 (= 2026-03-01 00:30 UTC) / Then the period is computed in UTC
    from datetime import timezone

    when = datetime(2026, 2, 28, 23, 30, tzinfo=timezone(timedelta(hours=-1)))
    assert branch_period(when, period) == expected


def test_in_memory_store_behaves_like_the_table(kms: Any, key_arn: str) -> None:
    # Given two vaults sharing an in-memory branch store
    store = InMemoryBranchStore()
    a = Vault(kms=kms, store=store, kms_key_id=key_arn, period="day")
    b = Vault(kms=kms, store=store, kms_key_id=key_arn, period="day")
    # When both seal / Then they share one branch and open each other's blobs
    blob = a.seal(b"x", mentor_id="m", provider="apple")
    assert b.open(blob, mentor_id="m", provider="apple") == b"x"
    assert b.inspect(b.seal(b"y", mentor_id="m", provider="apple")).wrapped_key == a.inspect(blob).wrapped_key
    assert len(store) == 1


# --- KMS failures ----------------------------------------------------------------------------------


class FailingKms:
    """A KMS whose every call fails with ``code``."""

    def __init__(self, code: str) -> None:
        self.code = code

    def _fail(self, op: str) -> Any:
        raise ClientError({"Error": {"Code": self.code, "Message": "nope"}}, op)

    def generate_data_key(self, **kwargs: Any) -> Any:
        return self._fail("GenerateDataKey")

    def decrypt(self, **kwargs: Any) -> Any:
        return self._fail("Decrypt")


@pytest.mark.parametrize(
    ("code", "error"),
    [("ThrottlingException", VaultUnavailableError), ("InvalidCiphertextException", VaultIntegrityError)],
)
def test_kms_errors_become_vault_errors(
    vault: Vault, store: DynamoBranchStore, key_arn: str, code: str, error: type[Exception]
) -> None:
    # Given a blob, and a process whose KMS fails with ``code``
    blob = vault.seal(b"secret-plaintext", mentor_id="m", provider="google")
    broken = Vault(kms=FailingKms(code), store=store, kms_key_id=key_arn)
    # When it opens the blob / Then the error says which kind of failure, with no material in it
    with pytest.raises(error, match=code) as caught:
        broken.open(blob, mentor_id="m", provider="google")
    assert "secret" not in str(caught.value)


def test_kms_failure_while_creating_a_branch_is_unavailable(store: DynamoBranchStore, key_arn: str) -> None:
    # Given a process whose KMS is throttled and no branch yet / When it seals / Then: retry later
    broken = Vault(kms=FailingKms("NotFoundException"), store=store, kms_key_id=key_arn)
    with pytest.raises(VaultUnavailableError, match="GenerateDataKey"):
        broken.seal(b"x", mentor_id="m", provider="google")
