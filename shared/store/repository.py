"""Mentor and connection items: reads, and conditional writes with optimistic locking.

See :mod:`shared.store.schema` for the key design and the access patterns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.store.errors import ConflictError
from shared.store.models import Connection, ConnectionStatus, Mentor, Plan, Provider, utcnow
from shared.store.table import Table, UpdateExpression

#: Providers whose busy times are synced; their live connections sit in the sparse GSI1.
SYNCED_PROVIDERS = frozenset({Provider.GOOGLE, Provider.APPLE, Provider.MICROSOFT})


def mentor_pk(mentor_id: str) -> str:
    """Partition key of everything a mentor owns."""
    return f"MENTOR#{mentor_id}"


def connection_sk(provider: Provider | str) -> str:
    """Sort key of a mentor's connection to ``provider``."""
    return f"CONN#{Provider(provider).value}"


def _iso(value: datetime) -> str:
    return value.isoformat()


class Store:
    """Repository of mentors and connections over the single table."""

    def __init__(self, table: Table) -> None:
        self.table = table

    # -- mentors -----------------------------------------------------------------------------
    def get_mentor(self, mentor_id: str) -> Mentor | None:
        """The mentor's profile, or ``None`` if it was never written."""
        item = self.table.get(mentor_pk(mentor_id), "PROFILE")
        return _mentor_from_item(mentor_id, item) if item else None

    def upsert_mentor(self, mentor_id: str, **fields: Any) -> Mentor:
        """Create the profile or update the given fields (``plan``, ``email``, ``timezone``)."""
        allowed = {"plan", "email", "timezone"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown mentor fields: {sorted(unknown)}")
        # Validate through the model before writing anything.
        current = self.get_mentor(mentor_id)
        base = current.model_dump() if current else {"mentor_id": mentor_id}
        merged = Mentor.model_validate({**base, **{k: v for k, v in fields.items() if v is not None}})
        sets = ["#v = if_not_exists(#v, :zero) + :one", "#u = :u"]
        names = {"#v": "version", "#u": "updated_at"}
        values: dict[str, Any] = {":zero": 0, ":one": 1, ":u": _iso(utcnow())}
        for key in sorted(fields):
            if fields[key] is None:
                continue
            names[f"#{key}"] = key
            values[f":{key}"] = str(getattr(merged, key))
            sets.append(f"#{key} = :{key}")
        item = self.table.update(
            mentor_pk(mentor_id),
            "PROFILE",
            expression="SET " + ", ".join(sets),
            names=names,
            values=values,
        )
        return _mentor_from_item(mentor_id, item)

    def set_plan_from_event(self, mentor_id: str, plan: Plan | str, *, event_key: str, event_at: int) -> Mentor | None:
        """Set the plan from a billing event unless a later one already did; ``None`` if this one is stale.

        Billing events arrive out of order, so the profile remembers the ordering key of the event
        that last set the plan (``plan_event_key``, compared as a string: callers build it so that
        string order is event order, e.g. zero-padded ``created`` first) and its time
        (``plan_event_at``, Unix seconds). The write is conditional on the stored key being absent
        or smaller, so an older event never overwrites a newer one and a replay of the same event
        changes nothing. ``upsert_mentor(plan=...)`` (a manual override) leaves the key alone.
        """
        chosen = Plan(plan)
        try:
            item = self.table.update(
                mentor_pk(mentor_id),
                "PROFILE",
                expression="SET #plan = :plan, #key = :key, #at = :at, #v = if_not_exists(#v, :zero) + :one, #u = :u",
                condition="attribute_not_exists(#key) OR #key < :key",
                names={
                    "#plan": "plan",
                    "#key": "plan_event_key",
                    "#at": "plan_event_at",
                    "#v": "version",
                    "#u": "updated_at",
                },
                values={
                    ":plan": chosen.value,
                    ":key": event_key,
                    ":at": event_at,
                    ":zero": 0,
                    ":one": 1,
                    ":u": _iso(utcnow()),
                },
            )
        except ConflictError:
            return None
        return _mentor_from_item(mentor_id, item)

    # -- connections -------------------------------------------------------------------------
    def get_connection(self, mentor_id: str, provider: Provider | str) -> Connection | None:
        """One connection, read consistently, or ``None``."""
        item = self.table.get(mentor_pk(mentor_id), connection_sk(provider))
        return _connection_from_item(item) if item else None

    def list_connections(self, mentor_id: str) -> list[Connection]:
        """Every connection the mentor has (absent providers are ``not_connected``)."""
        return [_connection_from_item(item) for item in self.table.query(mentor_pk(mentor_id), sk_prefix="CONN#")]

    def save_connection(self, conn: Connection, *, expected_version: int | None) -> Connection:
        """Write ``conn`` whole, conditionally.

        ``expected_version=None`` creates it and fails if one exists; otherwise the stored item
        must still carry ``expected_version``. Raises :class:`ConflictError` when the check fails.
        """
        new_version = 1 if expected_version is None else expected_version + 1
        saved = conn.model_copy(update={"version": new_version, "updated_at": utcnow()})
        if expected_version is None:
            self.table.put(_connection_to_item(saved), condition="attribute_not_exists(PK)")
        else:
            self.table.put(
                _connection_to_item(saved),
                condition="#v = :expected",
                names={"#v": "version"},
                values_={":expected": expected_version},
            )
        return saved

    def update_connection(
        self, mentor_id: str, provider: Provider | str, *, expected_version: int, **changes: Any
    ) -> Connection:
        """Set some attributes of a connection if its version is still ``expected_version``."""
        allowed = set(Connection.model_fields) - {"mentor_id", "provider", "version", "updated_at"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"unknown connection fields: {sorted(unknown)}")
        update = UpdateExpression(
            names={"#v": "version", "#u": "updated_at"},
            values={":next": expected_version + 1, ":expected": expected_version, ":u": _iso(utcnow())},
        )
        update.set("#v = :next").set("#u = :u").changes(changes)
        if "status" in changes and Provider(provider) in SYNCED_PROVIDERS:
            sync = _sync_index_keys(Provider(provider), ConnectionStatus(changes["status"]), mentor_id)
            update.names.update({"#g1pk": "GSI1PK", "#g1sk": "GSI1SK"})
            if sync:
                update.values.update({":g1pk": sync["GSI1PK"], ":g1sk": sync["GSI1SK"]})
                update.sets += ["#g1pk = :g1pk", "#g1sk = :g1sk"]
            else:
                update.removes += ["#g1pk", "#g1sk"]
        item = self.table.update(
            mentor_pk(mentor_id),
            connection_sk(provider),
            expression=update.expression,
            condition="#v = :expected",
            names=update.names,
            values=update.values,
        )
        return _connection_from_item(item)

    def mark_needs_reconnect(self, mentor_id: str, provider: Provider | str, reason: str) -> bool:
        """Flag a connection ``needs_reconnect`` and drop its credential; ``True`` if this call did it.

        Only the first caller wins (conditional on the current status), so the mentor gets one
        e-mail however many workers notice the revoked token at once.
        """
        # Calendar connections leave the sync index (sync stops); Zoom keeps its user lookup.
        removes = "credential, GSI1PK, GSI1SK" if Provider(provider) in SYNCED_PROVIDERS else "credential"
        try:
            self.table.update(
                mentor_pk(mentor_id),
                connection_sk(provider),
                expression="SET #s = :nr, #r = :reason, #u = :u, #v = #v + :one REMOVE " + removes,
                condition="attribute_exists(PK) AND #s <> :nr",
                names={"#s": "status", "#r": "status_reason", "#u": "updated_at", "#v": "version"},
                values={
                    ":nr": ConnectionStatus.NEEDS_RECONNECT.value,
                    ":reason": reason,
                    ":u": _iso(utcnow()),
                    ":one": 1,
                },
            )
        except ConflictError:
            return False
        return True

    def delete_connection(
        self, mentor_id: str, provider: Provider | str, *, connected_at: datetime | None = None
    ) -> bool:
        """Delete the connection and its sealed credential at once; ``True`` if one existed.

        With ``connected_at``, only the connection made at that instant is deleted (not a newer one
        that replaced it meanwhile).
        """
        condition, values = "attribute_exists(PK)", dict[str, Any]()
        if connected_at is not None:
            condition += " AND connected_at = :connected_at"
            values[":connected_at"] = _iso(connected_at)
        try:
            self.table.delete(mentor_pk(mentor_id), connection_sk(provider), condition=condition, values=values)
        except ConflictError:
            return False
        return True


def _mentor_from_item(mentor_id: str, item: dict[str, Any]) -> Mentor:
    return Mentor(
        mentor_id=mentor_id,
        plan=item.get("plan", "free"),
        email=item.get("email"),
        timezone=item.get("timezone", "UTC"),
        version=int(item.get("version", 0)),
        updated_at=item["updated_at"],
    )


def _sync_index_keys(provider: Provider, status: ConnectionStatus, mentor_id: str) -> dict[str, str]:
    if provider in SYNCED_PROVIDERS and status is ConnectionStatus.CONNECTED:
        return {"GSI1PK": f"SYNC#{provider.value}", "GSI1SK": mentor_id}
    return {}


def zoom_user_pk(zoom_user_id: str) -> str:
    """GSI1 partition of a Zoom connection: found by Zoom user id when Zoom deauthorizes the app."""
    return f"ZOOMUSER#{zoom_user_id}"


def _index_keys(conn: Connection) -> dict[str, str]:
    """GSI1 keys of a connection: calendar sync (google/apple, while connected) or Zoom user lookup."""
    if conn.provider is Provider.ZOOM and conn.account_id:
        # Kept whatever the status, so a deauthorization also finds a needs_reconnect connection.
        return {"GSI1PK": zoom_user_pk(conn.account_id), "GSI1SK": conn.mentor_id}
    return _sync_index_keys(conn.provider, conn.status, conn.mentor_id)


def _connection_to_item(conn: Connection) -> dict[str, Any]:
    item: dict[str, Any] = {
        "PK": mentor_pk(conn.mentor_id),
        "SK": connection_sk(conn.provider),
        "type": "connection",
        "mentor_id": conn.mentor_id,
        "provider": conn.provider.value,
        "status": conn.status.value,
        "account_label": conn.account_label,
        "account_id": conn.account_id,
        "selected_calendar": conn.selected_calendar,
        "plan_type": conn.plan_type,
        "credential": conn.credential,
        "status_reason": conn.status_reason,
        "version": conn.version,
        "connected_at": _iso(conn.connected_at),
        "updated_at": _iso(conn.updated_at),
    }
    item.update(_index_keys(conn))
    return item


def _connection_from_item(item: dict[str, Any]) -> Connection:
    return Connection(
        mentor_id=item["mentor_id"],
        provider=item["provider"],
        status=item["status"],
        account_label=item.get("account_label"),
        account_id=item.get("account_id"),
        selected_calendar=item.get("selected_calendar"),
        plan_type=int(item["plan_type"]) if item.get("plan_type") is not None else None,
        credential=item.get("credential"),
        status_reason=item.get("status_reason"),
        version=int(item.get("version", 0)),
        connected_at=item["connected_at"],
        updated_at=item["updated_at"],
    )
