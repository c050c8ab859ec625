"""devstack.moto_transactions: the local moto server's TransactWriteItems rolls back exactly as
moto's (all or nothing) but snapshots only the items it names, so it does not slow down as the
table grows."""

from __future__ import annotations

import secrets
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from devstack.stack import LocalStack
from shared.store.schema import create_table


@pytest.fixture
def table(local_stack: LocalStack) -> Iterator[tuple[Any, str]]:
    ddb = local_stack.client("dynamodb")
    name = f"tx-test-{secrets.token_hex(4)}"
    create_table(ddb, name)
    yield ddb, name
    ddb.delete_table(TableName=name)


def _key(pk: str) -> dict[str, Any]:
    return {"PK": {"S": pk}, "SK": {"S": "X"}}


def _get(ddb: Any, name: str, pk: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = ddb.get_item(TableName=name, Key=_key(pk), ConsistentRead=True).get("Item")
    return item


def _update(name: str, pk: str, value: int, condition: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "TableName": name,
        "Key": _key(pk),
        "UpdateExpression": "SET n = :v",
        "ExpressionAttributeValues": {":v": {"N": str(value)}},
    }
    if condition:
        op["ConditionExpression"] = condition
    return {"Update": op}


def test_a_failed_transaction_leaves_every_item_as_it_was(table: tuple[Any, str]) -> None:
    """Given A=1 and C=1, when a transaction updates A, puts a new B and then fails its condition on C,
    then A is still 1, B does not exist and C is untouched; a good transaction applies everything."""
    ddb, name = table
    for pk in ("A", "C"):
        ddb.put_item(TableName=name, Item={**_key(pk), "n": {"N": "1"}})
    put_b = {"Put": {"TableName": name, "Item": {**_key("B"), "n": {"N": "5"}}}}
    with pytest.raises(ClientError) as caught:
        ddb.transact_write_items(TransactItems=[_update(name, "A", 2), put_b, _update(name, "C", 9, "n = :v")])
    assert caught.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert _get(ddb, name, "A") == {**_key("A"), "n": {"N": "1"}}
    assert _get(ddb, name, "B") is None
    assert _get(ddb, name, "C") == {**_key("C"), "n": {"N": "1"}}

    ddb.transact_write_items(TransactItems=[_update(name, "A", 2), put_b])
    assert _get(ddb, name, "A") == {**_key("A"), "n": {"N": "2"}}
    assert _get(ddb, name, "B") == {**_key("B"), "n": {"N": "5"}}


def test_a_transaction_naming_an_item_twice_is_refused_and_changes_nothing(table: tuple[Any, str]) -> None:
    """Given A=1, when a transaction updates A twice, then it is refused and A is still 1."""
    ddb, name = table
    ddb.put_item(TableName=name, Item={**_key("A"), "n": {"N": "1"}})
    with pytest.raises(ClientError):
        ddb.transact_write_items(TransactItems=[_update(name, "A", 2), _update(name, "A", 3)])
    assert _get(ddb, name, "A") == {**_key("A"), "n": {"N": "1"}}


def test_transactions_do_not_slow_down_as_the_table_grows(table: tuple[Any, str]) -> None:
    """Given an empty table and then 1,500 items, when the same transaction runs, then it costs about
    the same (moto's whole-table copy made it ~25x slower at this size)."""
    ddb, name = table

    def median_ms() -> float:
        samples = []
        for n in range(15):
            start = time.perf_counter()
            ddb.transact_write_items(TransactItems=[_update(name, "A", n), _update(name, "B", n)])
            samples.append(time.perf_counter() - start)
        return statistics.median(samples) * 1000

    empty = median_ms()
    for n in range(0, 1500, 25):
        ddb.batch_write_item(
            RequestItems={
                name: [{"PutRequest": {"Item": {**_key(f"F{n + i}"), "pad": {"S": "x" * 200}}}} for i in range(25)]
            }
        )
    full = median_ms()
    print(f"transaction: {empty:.1f} ms on an empty table, {full:.1f} ms at 1,500 items")
    assert full < max(3 * empty, empty + 15)
