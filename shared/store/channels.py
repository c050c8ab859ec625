"""Google push channels (``events.watch``) and watch retries, in the single table.

Items (see :mod:`shared.store.schema`)::

    item                   PK                   SK                          GSI1PK / GSI1SK
    push channel           CHANNEL#<channelId>  CHANNEL                     CHANNELS / <expiration ms:013d>#<channelId>
    mentor → channel link  MENTOR#<mentorId>    CHANNEL#google#<channelId>  -
    watch retry            MENTOR#<mentorId>    PUSHRETRY#google            PUSHRETRY / <due ms:013d>#<mentorId>

* The **channel** item is what ``POST /webhooks/google`` reads (one consistent GetItem by the
  ``X-Goog-Channel-ID`` header): owner, watched calendar, Google's resource id, expiration and the
  SHA-256 of the channel token — never the token itself. Its GSI1 entry orders every channel by
  expiration, so renewal finds "expiring before T" with one paged Query (no scan).
* The **link** item copies the channel's immutable fields under the mentor's partition, so a
  disconnect or a calendar switch finds the mentor's channels with one Query. Channel and link are
  written and deleted together (one transaction).
* The **retry** item remembers a watch that failed (provider down, token refresh failing) so the
  scheduled renewal tries again (``due``), with backoff and a bounded number of attempts.
* **Health** (push-first, :mod:`shared.busy.push_first`): the channel item also records when Google's
  ``sync`` handshake reached the webhook (``confirmed_ms``: proof that deliveries arrive) and when the
  next safety resync is due (``resync_due_ms``; 0 on a new channel: due at the first poll). The
  poller reads the live ones with one paged Query (:meth:`ChannelStore.live`).
* **Suspect** (:mod:`shared.busy.push_watchdog`): a resync found a change no push brought. The channel
  gets ``suspect_ms`` and its GSI1 key moves to the flag time: the poll's live Query no longer finds
  it (polled) and the renewal's expiring Query does at once (replaced); no extra read on a poll.

Every item carries ``ttl`` (a day after the channel expired / the retries give up), so leftovers
disappear even if nobody cleans them up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from shared.store.errors import ConflictError
from shared.store.repository import mentor_pk
from shared.store.schema import GSI1
from shared.store.table import Table, from_item, to_item, tx_check, tx_put, tx_update

CHANNEL_PREFIX: Final = "CHANNEL#"
CHANNEL_SK: Final = "CHANNEL"
CHANNELS_INDEX: Final = "CHANNELS"
RETRY_INDEX: Final = "PUSHRETRY"
#: Items outlive the channel / the last retry by this much before DynamoDB's TTL removes them.
TTL_GRACE_S: Final = 24 * 3600


def channel_pk(channel_id: str) -> str:
    return f"{CHANNEL_PREFIX}{channel_id}"


def link_sk(provider: str, channel_id: str) -> str:
    return f"{CHANNEL_PREFIX}{provider}#{channel_id}"


def retry_sk(provider: str) -> str:
    return f"{RETRY_INDEX}#{provider}"


def _ms_key(ms: int, suffix: str) -> str:
    return f"{max(0, ms):013d}#{suffix}"


@dataclass(frozen=True)
class PushChannel:
    """One watch channel as we stored it (``token_hash`` = hex SHA-256 of the channel token)."""

    channel_id: str
    mentor_id: str
    calendar_id: str
    resource_id: str
    expiration_ms: int
    token_hash: str
    account_id: str | None = None
    provider: str = "google"
    created_ms: int = 0
    renew_failures: int = 0  # channel item only: failed renewals so far (backoff)
    confirmed_ms: int = 0  # channel item only: when Google's "sync" handshake reached the webhook
    resync_due_ms: int = 0  # channel item only: when the next safety resync is due
    suspect_ms: int = 0  # channel item only: when a resync found a change it missed (renewed at once)

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.expiration_ms / 1000, UTC)


@dataclass(frozen=True)
class WatchRetry:
    """A watch that has to be tried again at ``due_ms``."""

    mentor_id: str
    attempts: int
    due_ms: int
    last_error: str | None = None
    provider: str = "google"


def _channel_from_item(item: dict[str, Any]) -> PushChannel:
    return PushChannel(
        channel_id=str(item["channel_id"]),
        mentor_id=str(item["mentor_id"]),
        calendar_id=str(item["calendar_id"]),
        resource_id=str(item["resource_id"]),
        expiration_ms=int(item["expiration_ms"]),
        token_hash=str(item.get("token_hash", "")),
        account_id=item.get("account_id"),
        provider=str(item.get("provider", "google")),
        created_ms=int(item.get("created_ms", 0)),
        renew_failures=int(item.get("renew_failures", 0)),
        confirmed_ms=int(item.get("confirmed_ms", 0)),
        resync_due_ms=int(item.get("resync_due_ms", 0)),
        suspect_ms=int(item.get("suspect_ms", 0)),
    )


class ChannelStore:
    """Channel, link and retry items over the single table (module docstring)."""

    def __init__(self, table: Table) -> None:
        self.table = table

    # -- channels ------------------------------------------------------------------------------
    def put(self, channel: PushChannel) -> None:
        """Write the channel and its link in one transaction (the channel id must be new)."""
        ttl = channel.expiration_ms // 1000 + TTL_GRACE_S
        common = {
            "channel_id": channel.channel_id,
            "provider": channel.provider,
            "mentor_id": channel.mentor_id,
            "calendar_id": channel.calendar_id,
            "account_id": channel.account_id,
            "resource_id": channel.resource_id,
            "expiration_ms": channel.expiration_ms,
            "created_ms": channel.created_ms,
            "ttl": ttl,
        }
        self.table.transact(
            [
                tx_put(
                    {
                        "PK": channel_pk(channel.channel_id),
                        "SK": CHANNEL_SK,
                        "type": "push_channel",
                        "token_hash": channel.token_hash,
                        "GSI1PK": CHANNELS_INDEX,
                        "GSI1SK": _ms_key(channel.expiration_ms, channel.channel_id),
                        **common,
                    },
                    condition="attribute_not_exists(PK)",
                ),
                tx_put(
                    {
                        "PK": mentor_pk(channel.mentor_id),
                        "SK": link_sk(channel.provider, channel.channel_id),
                        "type": "push_channel_link",
                        **common,
                    }
                ),
            ]
        )

    def activate(self, channel: PushChannel) -> None:
        """Record Google's resource id and expiration on a channel written before ``events.watch``."""
        ttl = channel.expiration_ms // 1000 + TTL_GRACE_S
        values = {":rid": channel.resource_id, ":exp": channel.expiration_ms, ":ttl": ttl}
        names = {"#rid": "resource_id", "#exp": "expiration_ms", "#ttl": "ttl"}
        self.table.transact(
            [
                tx_update(
                    channel_pk(channel.channel_id),
                    CHANNEL_SK,
                    expression="SET #rid = :rid, #exp = :exp, #ttl = :ttl, #g1sk = :g1sk",
                    condition="attribute_exists(PK)",
                    names={**names, "#g1sk": "GSI1SK"},
                    values={**values, ":g1sk": _ms_key(channel.expiration_ms, channel.channel_id)},
                ),
                tx_update(
                    mentor_pk(channel.mentor_id),
                    link_sk(channel.provider, channel.channel_id),
                    expression="SET #rid = :rid, #exp = :exp, #ttl = :ttl",
                    condition="attribute_exists(PK)",
                    names=names,
                    values=values,
                ),
            ]
        )

    def get(self, channel_id: str) -> PushChannel | None:
        """The channel (consistent read), or ``None``."""
        item = self.table.get(channel_pk(channel_id), CHANNEL_SK)
        return _channel_from_item(item) if item else None

    def for_mentor(self, mentor_id: str, provider: str = "google") -> list[PushChannel]:
        """The mentor's channels (from the link items; no token hash), oldest first."""
        found = [
            _channel_from_item(item) for item in self.table.query(mentor_pk(mentor_id), sk_prefix=link_sk(provider, ""))
        ]
        return sorted(found, key=lambda c: (c.created_ms, c.channel_id))

    def delete(self, channel: PushChannel) -> None:
        """Delete the channel and its link (either may already be gone)."""
        keys = [
            {"PK": channel_pk(channel.channel_id), "SK": CHANNEL_SK},
            {"PK": mentor_pk(channel.mentor_id), "SK": link_sk(channel.provider, channel.channel_id)},
        ]
        self.table.client.transact_write_items(
            TransactItems=[{"Delete": {"TableName": self.table.name, "Key": to_item(key)}} for key in keys]
        )

    def expiring(self, before_ms: int, *, page_size: int = 100) -> Iterator[PushChannel]:
        """Channels whose expiration is before ``before_ms`` (GSI1 Query, paged lazily; eventually consistent)."""
        yield from self._due(CHANNELS_INDEX, before_ms, page_size, _channel_from_item)

    def claim_renewal(self, channel_id: str, *, now_s: float, lease_s: float) -> bool:
        """Take the renewal lease of a channel; ``False`` if it is gone or another renewal holds it."""
        try:
            self.table.update(
                channel_pk(channel_id),
                CHANNEL_SK,
                expression="SET #l = :until",
                condition="attribute_exists(PK) AND (attribute_not_exists(#l) OR #l < :now)",
                names={"#l": "renew_lease_until"},
                values={":until": int(now_s + lease_s), ":now": int(now_s)},
            )
        except ConflictError:
            return False
        return True

    def hold_renewal(self, channel_id: str, *, until_s: float, failures: int) -> None:
        """After a failed renewal: leave the channel alone until ``until_s`` (backoff)."""
        with contextlib.suppress(ConflictError):
            self.table.update(
                channel_pk(channel_id),
                CHANNEL_SK,
                expression="SET #l = :until, #f = :f",
                condition="attribute_exists(PK)",
                names={"#l": "renew_lease_until", "#f": "renew_failures"},
                values={":until": int(until_s), ":f": failures},
            )

    def confirm(self, channel_id: str, *, now_ms: int) -> bool:
        """Record the ``sync`` handshake of a channel (once); ``False`` if gone or already confirmed."""
        try:
            self.table.update(
                channel_pk(channel_id),
                CHANNEL_SK,
                expression="SET #c = :now",
                condition="attribute_exists(PK) AND attribute_not_exists(#c)",
                names={"#c": "confirmed_ms"},
                values={":now": now_ms},
            )
        except ConflictError:
            return False
        return True

    def live(self, after_ms: int, *, page_size: int = 500) -> Iterator[PushChannel]:
        """Channels expiring after ``after_ms`` (GSI1 Query, paged lazily; eventually consistent)."""
        yield from self._due(CHANNELS_INDEX, after_ms, page_size, _channel_from_item, op=">")

    def claim_resync(self, channel_id: str, *, now_ms: int, next_ms: int) -> bool:
        """Take the safety resync that is due (``resync_due_ms <= now``) and set the next one.

        ``False`` when it is not due (another poll took it) or the channel is gone.
        """
        try:
            self.table.update(
                channel_pk(channel_id),
                CHANNEL_SK,
                expression="SET #r = :next",
                condition="attribute_exists(PK) AND (attribute_not_exists(#r) OR #r <= :now)",
                names={"#r": "resync_due_ms"},
                values={":next": next_ms, ":now": now_ms},
            )
        except ConflictError:
            return False
        return True

    def flag_suspect(self, channel_id: str, mentor_id: str, provider: str, *, now_ms: int, quiet_since_ms: int) -> bool:
        """Flag a channel that missed a change (module docstring) in one transaction, on condition
        that its link's last push sync (:meth:`claim_push_sync`) was due before ``quiet_since_ms``;
        ``False`` (nothing written) when a push is that recent, or the channel is gone or flagged."""
        try:
            self.table.transact(
                [
                    tx_update(
                        channel_pk(channel_id),
                        CHANNEL_SK,
                        expression="SET #s = :now, #g1sk = :due",
                        condition="attribute_exists(PK) AND attribute_not_exists(#s)",
                        names={"#s": "suspect_ms", "#g1sk": "GSI1SK"},
                        values={":now": now_ms, ":due": _ms_key(now_ms, channel_id)},
                    ),
                    tx_check(
                        mentor_pk(mentor_id),
                        link_sk(provider, channel_id),
                        condition="attribute_exists(PK) AND (attribute_not_exists(#d) OR #d < :quiet)",
                        names={"#d": "sync_due_ms"},
                        values={":quiet": quiet_since_ms},
                    ),
                ]
            )
        except ConflictError:
            return False
        return True

    def claim_push_sync(self, channel: PushChannel, *, now_ms: int, window_ms: int, margin_ms: int) -> bool:
        """Coalesce pushes: ``True`` if this push must queue a sync due at ``now + window``.

        ``False`` when a sync queued by an earlier push is still due later than ``now + margin``:
        that sync reads the calendar after this push's change happened, so it covers it. The due
        time lives on the link item, which is in no index: a push costs no GSI write.
        """
        try:
            self.table.update(
                mentor_pk(channel.mentor_id),
                link_sk(channel.provider, channel.channel_id),
                expression="SET #d = :due",
                condition="attribute_exists(PK) AND (attribute_not_exists(#d) OR #d <= :covered)",
                names={"#d": "sync_due_ms"},
                values={":due": now_ms + window_ms, ":covered": now_ms + margin_ms},
            )
        except ConflictError:
            return False
        return True

    def release_push_sync(self, channel: PushChannel, *, due_ms: int) -> None:
        """Undo :meth:`claim_push_sync` (the message could not be queued), if nobody claimed since."""
        with contextlib.suppress(ConflictError):
            self.table.update(
                mentor_pk(channel.mentor_id),
                link_sk(channel.provider, channel.channel_id),
                expression="REMOVE #d",
                condition="#d = :due",
                names={"#d": "sync_due_ms"},
                values={":due": due_ms},
            )

    # -- retries -------------------------------------------------------------------------------
    def get_retry(self, mentor_id: str, provider: str = "google") -> WatchRetry | None:
        item = self.table.get(mentor_pk(mentor_id), retry_sk(provider))
        return _retry_from_item(item) if item else None

    def put_retry(self, retry: WatchRetry) -> None:
        """Create or replace the mentor's retry item."""
        self.table.put(
            {
                "PK": mentor_pk(retry.mentor_id),
                "SK": retry_sk(retry.provider),
                "type": "push_watch_retry",
                "mentor_id": retry.mentor_id,
                "provider": retry.provider,
                "attempts": retry.attempts,
                "due_ms": retry.due_ms,
                "last_error": retry.last_error,
                "GSI1PK": RETRY_INDEX,
                "GSI1SK": _ms_key(retry.due_ms, retry.mentor_id),
                "ttl": retry.due_ms // 1000 + TTL_GRACE_S,
            }
        )

    def delete_retry(self, mentor_id: str, provider: str = "google") -> None:
        self.table.delete(mentor_pk(mentor_id), retry_sk(provider))

    def retries_due(self, before_ms: int, *, page_size: int = 100) -> Iterator[WatchRetry]:
        """Retry items due before ``before_ms`` (GSI1 Query, paged lazily)."""
        yield from self._due(RETRY_INDEX, before_ms, page_size, _retry_from_item)

    # -- plumbing ------------------------------------------------------------------------------
    def _due(self, partition: str, bound_ms: int, page_size: int, build: Any, *, op: str = "<") -> Iterator[Any]:
        kwargs: dict[str, Any] = {
            "TableName": self.table.name,
            "IndexName": GSI1,
            "KeyConditionExpression": f"#pk = :pk AND #sk {op} :bound",
            "ExpressionAttributeNames": {"#pk": "GSI1PK", "#sk": "GSI1SK"},
            "ExpressionAttributeValues": to_item({":pk": partition, ":bound": _ms_key(bound_ms, "")}),
            "Limit": page_size,
        }
        while True:
            resp = self.table.client.query(**kwargs)
            for raw in resp.get("Items", []):
                yield build(from_item(raw))
            last = resp.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last


def _retry_from_item(item: dict[str, Any]) -> WatchRetry:
    return WatchRetry(
        mentor_id=str(item["mentor_id"]),
        attempts=int(item.get("attempts", 0)),
        due_ms=int(item.get("due_ms", 0)),
        last_error=item.get("last_error"),
        provider=str(item.get("provider", "google")),
    )
