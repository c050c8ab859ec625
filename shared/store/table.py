"""Thin typed access to the single table through a boto3 DynamoDB *client*.

The low-level client (not the resource API) keeps the import graph and cold start small; items
are (de)serialised with boto3's TypeSerializer / TypeDeserializer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from shared.store.errors import ConflictError

#: DynamoDB's limit on the operations of one TransactWriteItems call.
MAX_TRANSACTION_OPS = 100

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    """Serialise a plain dict (``None`` values dropped) into DynamoDB's attribute-value shape."""
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Deserialise a DynamoDB item; binary attributes come back as ``bytes``."""
    out: dict[str, Any] = {}
    for key, value in item.items():
        plain = _deserializer.deserialize(value)
        if hasattr(plain, "value") and isinstance(plain.value, bytes):  # boto3 Binary
            plain = bytes(plain.value)
        out[key] = plain
    return out


def is_conditional_failure(exc: ClientError) -> bool:
    """Whether ``exc`` is a failed condition (single write or inside a transaction)."""
    code = exc.response.get("Error", {}).get("Code", "")
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = exc.response.get("CancellationReasons", [])
        return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons)
    return False


class Table:
    """A DynamoDB table addressed by name through an injected client."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    def get(
        self, pk: str, sk: str, *, consistent: bool = True, attributes: Sequence[str] = ()
    ) -> dict[str, Any] | None:
        """The item at (pk, sk), or ``None``; only ``attributes`` when given (a projection)."""
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "Key": to_item({"PK": pk, "SK": sk}),
            "ConsistentRead": consistent,
        }
        if attributes:
            names = {f"#a{i}": name for i, name in enumerate(attributes)}
            kwargs["ProjectionExpression"] = ", ".join(names)
            kwargs["ExpressionAttributeNames"] = names
        resp = self.client.get_item(**kwargs)
        item = resp.get("Item")
        return from_item(item) if item else None

    def put(
        self,
        values: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values_: Mapping[str, Any] | None = None,
    ) -> None:
        """Put an item, optionally conditional; a failed condition raises :class:`ConflictError`."""
        kwargs = _with_condition({"TableName": self.name, "Item": to_item(values)}, condition, names, _typed(values_))
        _conditional(self.client.put_item, kwargs, f"conditional put failed for {values.get('PK')}/{values.get('SK')}")

    def update(
        self,
        pk: str,
        sk: str,
        *,
        expression: str,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """UpdateItem returning the new item; a failed condition raises :class:`ConflictError`."""
        key = {"TableName": self.name, "Key": to_item({"PK": pk, "SK": sk})}
        kwargs = _with_condition(
            {**key, "UpdateExpression": expression, "ReturnValues": "ALL_NEW"}, condition, names, _typed(values)
        )
        resp = _conditional(self.client.update_item, kwargs, f"conditional update failed for {pk}/{sk}")
        return from_item(resp.get("Attributes", {}))

    def delete(
        self,
        pk: str,
        sk: str,
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        """Delete (pk, sk); a failed condition raises :class:`ConflictError`."""
        kwargs = _with_condition(
            {"TableName": self.name, "Key": to_item({"PK": pk, "SK": sk})}, condition, names, _typed(values)
        )
        _conditional(self.client.delete_item, kwargs, f"conditional delete failed for {pk}/{sk}")

    def transact(self, ops: list[dict[str, Any]]) -> None:
        """All of ``ops`` (from :func:`tx_put` / :func:`tx_update` / :func:`tx_check`) or none of them.

        At most 100 operations (DynamoDB's limit). A failed condition raises :class:`TransactionConflict`.
        """
        if not ops:
            return
        if len(ops) > MAX_TRANSACTION_OPS:
            raise ValueError(f"a transaction holds at most {MAX_TRANSACTION_OPS} operations, got {len(ops)}")
        _transact(self.client, self.name, ops)

    def query(
        self,
        pk: str,
        *,
        sk_prefix: str | None = None,
        index: str | None = None,
        page_size: int = 100,
        consistent: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Every item under partition ``pk`` (optionally with an SK prefix), paged lazily; ``consistent``
        reads the base table strongly consistently (not on an index)."""
        pk_attr, sk_attr = ("GSI1PK", "GSI1SK") if index else ("PK", "SK")
        expression = "#pk = :pk"
        names = {"#pk": pk_attr}
        values: dict[str, Any] = {":pk": pk}
        if sk_prefix:
            expression += " AND begins_with(#sk, :sk)"
            names["#sk"] = sk_attr
            values[":sk"] = sk_prefix
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": to_item(values),
            "Limit": page_size,
        }
        if index:
            kwargs["IndexName"] = index
        elif consistent:
            kwargs["ConsistentRead"] = True
        return self._pages(kwargs)

    def query_between(self, pk: str, lo_sk: str, hi_sk: str, *, consistent: bool = False) -> Iterator[dict[str, Any]]:
        """Every item of partition ``pk`` with ``lo_sk <= SK <= hi_sk``, paged lazily."""
        return self._pages(
            {
                "TableName": self.name,
                "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :lo AND :hi",
                "ExpressionAttributeNames": {"#pk": "PK", "#sk": "SK"},
                "ExpressionAttributeValues": to_item({":pk": pk, ":lo": lo_sk, ":hi": hi_sk}),
                "Limit": 100,
                "ConsistentRead": consistent,
            }
        )

    def _pages(self, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        while True:
            resp = self.client.query(**kwargs)
            for item in resp.get("Items", []):
                yield from_item(item)
            last = resp.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last


class UpdateExpression:
    """Builds an ``UpdateExpression`` with its names and values: ``SET`` clauses, and ``REMOVE`` for
    attributes set to ``None``. Start it with fixed clauses, add changes, then read ``expression``."""

    def __init__(self, names: Mapping[str, str] | None = None, values: Mapping[str, Any] | None = None) -> None:
        self.sets: list[str] = []
        self.removes: list[str] = []
        self.names: dict[str, str] = dict(names or {})
        self.values: dict[str, Any] = dict(values or {})

    def set(self, clause: str) -> UpdateExpression:
        """Add a literal ``SET`` clause (its names and values are the caller's)."""
        self.sets.append(clause)
        return self

    def changes(self, changes: Mapping[str, Any]) -> UpdateExpression:
        """``#k = :k`` for every change (enums as their value, datetimes as ISO strings); ``None`` removes."""
        for key, value in sorted(changes.items()):
            self.names[f"#{key}"] = key
            if value is None:
                self.removes.append(f"#{key}")
                continue
            if isinstance(value, datetime):
                value = value.isoformat()
            elif hasattr(value, "value") and not isinstance(value, bytes):  # enums
                value = value.value
            self.values[f":{key}"] = value
            self.sets.append(f"#{key} = :{key}")
        return self

    @property
    def expression(self) -> str:
        return "SET " + ", ".join(self.sets) + (" REMOVE " + ", ".join(self.removes) if self.removes else "")


def tx_put(
    values: Mapping[str, Any],
    *,
    condition: str | None = None,
    names: Mapping[str, str] | None = None,
    values_: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``Put`` of a :meth:`Table.transact` call (plain values; serialised there)."""
    op: dict[str, Any] = {"Item": dict(values)}
    return {"Put": _with_condition(op, condition, names, values_)}


def tx_update(
    pk: str,
    sk: str,
    *,
    expression: str,
    condition: str | None = None,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``Update`` of a :meth:`Table.transact` call."""
    op: dict[str, Any] = {"Key": {"PK": pk, "SK": sk}, "UpdateExpression": expression}
    return {"Update": _with_condition(op, condition, names, values)}


def tx_delete(pk: str, sk: str, *, condition: str | None = None) -> dict[str, Any]:
    """One ``Delete`` of a :meth:`Table.transact` call (deleting an absent item is not an error)."""
    return {"Delete": _with_condition({"Key": {"PK": pk, "SK": sk}}, condition, None, None)}


def tx_check(
    pk: str,
    sk: str,
    *,
    condition: str,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``ConditionCheck`` of a :meth:`Table.transact` call."""
    return {"ConditionCheck": _with_condition({"Key": {"PK": pk, "SK": sk}}, condition, names, values)}


def _with_condition(
    op: dict[str, Any], condition: str | None, names: Mapping[str, str] | None, values: Mapping[str, Any] | None
) -> dict[str, Any]:
    if condition:
        op["ConditionExpression"] = condition
    if names:
        op["ExpressionAttributeNames"] = dict(names)
    if values:
        op["ExpressionAttributeValues"] = dict(values)
    return op


class TransactionConflict(ConflictError):
    """A transaction's condition failed; ``failed`` holds the indexes of the operations that failed."""

    def __init__(self, message: str, failed: list[int]) -> None:
        super().__init__(message)
        self.failed = failed


def _transact(client: Any, table_name: str, ops: list[dict[str, Any]]) -> None:
    items = []
    for op in ops:
        ((kind, body),) = op.items()
        body = {**body, "TableName": table_name}
        if "Item" in body:
            body["Item"] = to_item(body["Item"])
        if "Key" in body:
            body["Key"] = to_item(body["Key"])
        if "ExpressionAttributeValues" in body:
            body["ExpressionAttributeValues"] = to_item(body["ExpressionAttributeValues"])
        items.append({kind: body})
    try:
        client.transact_write_items(TransactItems=items)
    except ClientError as exc:
        if is_conditional_failure(exc):
            reasons = exc.response.get("CancellationReasons", [])
            failed = [i for i, r in enumerate(reasons) if r.get("Code") == "ConditionalCheckFailed"]
            raise TransactionConflict(f"transaction condition failed at {failed}", failed) from exc
        raise


def _typed(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Expression attribute values in DynamoDB's typed form, for the single-item calls."""
    return to_item(values) if values else None


def _conditional(call: Callable[..., Any], kwargs: dict[str, Any], conflict: str) -> Any:
    """``call(**kwargs)``; a failed condition raises :class:`ConflictError` (``conflict``), anything else re-raises."""
    try:
        return call(**kwargs)
    except ClientError as exc:
        if is_conditional_failure(exc):
            raise ConflictError(conflict) from exc
        raise
