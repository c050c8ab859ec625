"""Pending subscription states: which mentor a Graph subscription's ``clientState`` belongs to.

Items (see :mod:`shared.store.schema`)::

    item                         PK                              SK        GSI1PK / GSI1SK
    pending subscription state   SUBSTATE#<sha256(clientState)>  SUBSTATE  -

* Written (one PutItem) by :meth:`shared.busy.microsoft_push.MicrosoftPush._subscribe` *before* its
  ``POST /subscriptions``: mentor id, provider, the hash again (``state_hash``, compared in constant
  time on read), ``created_ms`` and ``ttl`` = the subscription's requested expiration + 1 day. The
  ``clientState`` itself is never stored.
* Kept after the create succeeded (a POST retried inside the Graph client can leave a stray with the
  same ``clientState`` as the recorded subscription); DynamoDB's TTL removes it after the longest
  life any subscription made with that state can have.
* Read (one consistent GetItem) by ``POST /webhooks/microsoft`` only for a notification whose
  subscription id we did not record: a match means the subscription is one of ours whose create
  answer was lost (a *stray*), and the worker is asked to delete it at Graph.
* ``strays`` (a map subscription id → ms) coalesces those delete requests: one conditional
  UpdateItem claims a stray for a window, so a burst of its notifications queues one delete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from shared.store.errors import ConflictError
from shared.store.table import Table

STATE_PREFIX: Final = "SUBSTATE#"
STATE_SK: Final = "SUBSTATE"
#: The item outlives the subscription's requested expiration by this much before TTL removes it.
TTL_GRACE_S: Final = 24 * 3600


def state_pk(state_hash: str) -> str:
    return f"{STATE_PREFIX}{state_hash}"


@dataclass(frozen=True)
class PendingState:
    """A ``clientState`` sent to Graph (only its hex SHA-256) and the mentor it was made for."""

    state_hash: str
    mentor_id: str
    provider: str
    created_ms: int = 0


class SubscriptionStateStore:
    """Pending subscription states over the single table (module docstring)."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def put(self, state: PendingState, *, expires_s: float) -> None:
        """Record the state before the create (``expires_s``: the subscription's requested expiration)."""
        self.table.put(
            {
                "PK": state_pk(state.state_hash),
                "SK": STATE_SK,
                "type": "subscription_state",
                "state_hash": state.state_hash,
                "mentor_id": state.mentor_id,
                "provider": state.provider,
                "created_ms": state.created_ms,
                "strays": {},
                "ttl": int(expires_s) + TTL_GRACE_S,
            }
        )

    def get(self, state_hash: str) -> PendingState | None:
        """The pending state of this hash (consistent read), or ``None``."""
        item = self.table.get(state_pk(state_hash), STATE_SK)
        return _from_item(item) if item else None

    def claim_stray(self, state_hash: str, subscription_id: str, *, now_ms: int, window_ms: int) -> bool:
        """``True`` if this notification must queue the stray's delete (none queued in the last window)."""
        try:
            self.table.update(
                state_pk(state_hash),
                STATE_SK,
                expression="SET #s.#id = :now",
                condition="attribute_exists(PK) AND (attribute_not_exists(#s.#id) OR #s.#id <= :before)",
                names={"#s": "strays", "#id": subscription_id},
                values={":now": now_ms, ":before": now_ms - window_ms},
            )
        except ConflictError:
            return False
        return True


def _from_item(item: dict[str, Any]) -> PendingState:
    return PendingState(
        state_hash=str(item.get("state_hash", "")),
        mentor_id=str(item["mentor_id"]),
        provider=str(item.get("provider", "microsoft")),
        created_ms=int(item.get("created_ms", 0)),
    )
