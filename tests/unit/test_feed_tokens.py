"""The feed token (moto): created once, shown again, sealed at rest, rotated atomically."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import pytest

from shared import wiring
from shared.feed import tokens as feed
from shared.platform import aws
from shared.platform.api import ApiError
from shared.store import Store
from shared.vault import Vault, VaultUnavailableError
from shared.vault.branch_store import DynamoBranchStore
from shared.vault.keys import KeyCache

MENTOR = "m-feed"


@pytest.fixture
def vault(store: Store) -> Vault:
    return Vault(
        kms=aws.client("kms"),
        store=DynamoBranchStore(aws.client("dynamodb"), store.table.name),
        kms_key_id="alias/mentor-connections",
        cache=KeyCache(),
    )


@pytest.fixture
def tokens(store: Store, vault: Vault) -> feed.FeedTokens:
    return feed.FeedTokens(store.table, vault)


def _items(store: Store) -> list[dict[str, object]]:
    resp = aws.client("dynamodb").scan(TableName=store.table.name)
    return [i for i in resp["Items"] if "FEED" in i["SK"]["S"]]


def test_the_first_call_creates_the_feed_and_later_calls_show_the_same_token(
    store: Store, tokens: feed.FeedTokens
) -> None:
    first = tokens.ensure(MENTOR)
    assert tokens.ensure(MENTOR) == first
    assert feed.FeedTokens(store.table, tokens.vault).ensure(MENTOR) == first
    assert feed.mentor_for_token(store.table, first) == MENTOR
    assert len(_items(store)) == 2


def test_the_token_is_sealed_at_rest_and_only_its_hash_is_a_key(store: Store, tokens: feed.FeedTokens) -> None:
    token = tokens.ensure(MENTOR)
    items = _items(store)
    rendered = repr(items)
    assert token not in rendered
    assert token.encode() not in b"".join(i["sealed_token"]["B"] for i in items if "sealed_token" in i)
    lookup = store.table.get(feed.lookup_pk(feed.token_hash(token)), feed.FEED_SK)
    assert lookup is not None
    assert lookup["mentor_id"] == MENTOR
    mentor_item = store.table.get(f"MENTOR#{MENTOR}", feed.FEED_SK)
    assert mentor_item is not None
    assert mentor_item["token_hash"] == feed.token_hash(token)


def test_the_sealed_token_opens_only_for_its_mentor(store: Store, tokens: feed.FeedTokens) -> None:
    """A sealed token copied onto another mentor's item does not open there: that feed is re-keyed."""
    mine = tokens.ensure(MENTOR)
    sealed = store.table.get(f"MENTOR#{MENTOR}", feed.FEED_SK)
    assert sealed is not None
    tokens.ensure("m-other")
    store.table.update(
        "MENTOR#m-other",
        feed.FEED_SK,
        expression="SET sealed_token = :s, token_hash = :h",
        values={":s": sealed["sealed_token"], ":h": sealed["token_hash"]},
    )
    theirs = tokens.ensure("m-other")
    assert theirs != mine
    assert feed.mentor_for_token(store.table, theirs) == "m-other"
    assert feed.mentor_for_token(store.table, mine) == MENTOR  # re-keying m-other left MENTOR's URL alone
    assert tokens.ensure(MENTOR) == mine


def test_racing_first_calls_end_with_one_feed(store: Store, tokens: feed.FeedTokens, atomic_dynamodb: None) -> None:
    with ThreadPoolExecutor(8) as pool:
        seen = set(pool.map(lambda _: tokens.ensure(MENTOR), range(8)))
    assert len(seen) == 1
    assert len(_items(store)) == 2


def test_rotation_kills_the_old_url_at_once(store: Store, tokens: feed.FeedTokens) -> None:
    old = tokens.ensure(MENTOR)
    new = tokens.rotate(MENTOR)
    assert new != old
    assert feed.mentor_for_token(store.table, old) is None
    assert feed.mentor_for_token(store.table, new) == MENTOR
    assert tokens.ensure(MENTOR) == new
    assert len(_items(store)) == 2  # no lookup left behind


def test_rotating_before_any_feed_creates_one(store: Store, tokens: feed.FeedTokens) -> None:
    token = tokens.rotate(MENTOR)
    assert tokens.ensure(MENTOR) == token


def test_racing_rotations_leave_exactly_one_live_url(
    store: Store, tokens: feed.FeedTokens, atomic_dynamodb: None
) -> None:
    old = tokens.ensure(MENTOR)
    with ThreadPoolExecutor(6) as pool:
        answers = set(pool.map(lambda _: tokens.rotate(MENTOR), range(6)))
    current = tokens.ensure(MENTOR)
    assert old not in answers
    assert current in answers
    assert feed.mentor_for_token(store.table, old) is None
    live = [t for t in answers if feed.mentor_for_token(store.table, t) == MENTOR]
    assert live == [current]
    assert len(_items(store)) == 2


def test_kms_down_is_a_503_not_a_crash(store: Store, tokens: feed.FeedTokens, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(*_: object, **__: object) -> bytes:
        raise VaultUnavailableError("kms unreachable")

    monkeypatch.setattr(tokens.vault, "seal", down)
    with pytest.raises(ApiError) as caught:
        tokens.ensure(MENTOR)
    assert caught.value.status == HTTPStatus.SERVICE_UNAVAILABLE
    assert caught.value.code == "feed_unavailable"
    assert _items(store) == []


def test_urls_use_the_api_origin(store: Store, vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.setenv("API_URL", "https://api.mentors.example")
    wiring.reset()
    urls = feed.mentor_feed(store.table, vault, MENTOR)
    token = feed.token_from_path(urls.url.rsplit("/", 1)[1])
    assert token is not None
    assert urls.url == f"https://api.mentors.example/feeds/{token}.ics"
    assert urls.webcal_url == f"webcal://api.mentors.example/feeds/{token}.ics"
    rotated = feed.mentor_feed(store.table, vault, MENTOR, rotate=True)
    assert rotated.url != urls.url
    wiring.reset()
