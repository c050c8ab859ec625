"""Microsoft busy times (PRODUCT.md §2.7): the ``busy_sync`` worker's read of an Outlook calendar.

``getSchedule`` for the mailbox's own address over the busy window (``now → now +
BUSY_WINDOW_DAYS``, the window Google and Apple use), in periods under Graph's 62-day limit
(:meth:`shared.providers.microsoft.busy.MicrosoftBusyClient.schedule`). The address is the one the
connection shows ("Connected as <mail or userPrincipalName>"); ``getSchedule`` reads the mailbox's
free/busy, i.e. its default calendar, whatever calendar classes are written to.

**Which items are busy.** Google's ``freeBusy`` (the model) marks every event that is not
transparent, cancelled or declined as busy, tentative answers included. The same rule here:
``busy``, ``oof`` and ``tentative`` block time; ``free`` and ``workingElsewhere`` (the mentor is
working, just not at the office) do not; ``unknown`` blocks (a booking over an event we cannot read
is the worse mistake). Cancelled events never appear in ``getSchedule``.

Errors map like Google's: 401 after one forced refresh and 429/5xx/unreachable → retry later
(``Retry-After`` honoured); another 4xx → refused (recorded, acknowledged); a dead grant →
``needs_reconnect`` through the credential accessor.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Final

from pydantic import SecretStr

from shared.busy.sync import PermanentSyncError, TransientSyncError, _Unavailable
from shared.store import Connection, Provider
from shared.store.busy import Block, merge

if TYPE_CHECKING:
    from shared.busy.sync import BusySync
    from shared.providers.microsoft.busy import ScheduleItem

#: Graph schedule statuses that block time (see the module docstring).
BUSY_STATUSES: Final = frozenset({"busy", "oof", "tentative", "unknown"})
#: The prefix the connection's label carries before the address.
_LABEL_PREFIX: Final = "connected as "


def busy_blocks(items: list[ScheduleItem], start: datetime, end: datetime) -> list[Block]:
    """The merged busy blocks of ``items`` clipped to ``[start, end)``."""
    blocks = [
        Block(max(i.start, start), min(i.end, end))
        for i in items
        if i.status.lower() in BUSY_STATUSES and i.start < end and i.end > start
    ]
    return merge(blocks)


def mailbox_address(conn: Connection) -> str | None:
    """The address ``getSchedule`` is asked about: the connection's mail or userPrincipalName."""
    label = (conn.account_label or "").strip()
    if label.lower().startswith(_LABEL_PREFIX):
        label = label[len(_LABEL_PREFIX) :].strip()
    return label if "@" in label and len(label) <= 320 else None


def read_microsoft(sync: BusySync, conn: Connection, window: tuple[datetime, datetime]) -> list[Block]:
    """The connection's busy blocks over ``window``; raises the sync's error types."""
    from shared.providers.fresh_token import with_fresh_token
    from shared.providers.microsoft.errors import MicrosoftApiError, MicrosoftAuthError, MicrosoftRateLimited

    if sync.microsoft is None:
        raise PermanentSyncError("not_configured", "no Microsoft client")
    address = mailbox_address(conn)
    if address is None:
        raise PermanentSyncError("no_address", "the Microsoft connection names no mailbox address")
    client = sync.microsoft()
    try:
        items = with_fresh_token(
            _token(sync, conn),
            lambda bearer: client.schedule(bearer, address, window[0], window[1]),
            lambda rejected: _token(sync, conn, reject=rejected),
            auth_error=MicrosoftAuthError,
        )
    except MicrosoftRateLimited as exc:
        raise TransientSyncError("rate_limited", str(exc), exc.retry_after_s) from None
    except MicrosoftAuthError:
        raise TransientSyncError("unauthorized", "Microsoft refused the access token.") from None
    except MicrosoftApiError as exc:
        if exc.status is None or exc.status >= 500:
            raise TransientSyncError("unavailable", str(exc)) from None
        raise PermanentSyncError(exc.code or "refused", str(exc)) from None
    return busy_blocks(items, *window)


def _token(sync: BusySync, conn: Connection, *, reject: SecretStr | None = None) -> SecretStr:
    from shared.providers.credentials import ConnectionUnavailable
    from shared.providers.oauth import OAuthError
    from shared.vault import VaultError

    try:
        if reject is not None:
            return sync.tokens(conn.mentor_id, Provider.MICROSOFT, reject=reject)
        return sync.tokens(conn.mentor_id, Provider.MICROSOFT)
    except ConnectionUnavailable as exc:
        raise _Unavailable(exc.status) from None
    except (OAuthError, VaultError) as exc:
        raise TransientSyncError("token_unavailable", type(exc).__name__) from None
