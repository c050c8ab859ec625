"""Where branch keys are shared between processes: one wrapped branch key per period.

The DynamoDB store keeps it in the single table at ``PK="VAULT", SK="BRANCH#<period>"``; the
in-memory store is for tests and single-process tools. Only the KMS-wrapped form is stored:
the plaintext branch key never leaves process memory.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from shared.store.schema import PK, SK
from shared.vault.errors import VaultUnavailableError

VAULT_PK: Final = "VAULT"
BRANCH_SK_PREFIX: Final = "BRANCH#"


@dataclass(frozen=True, slots=True)
class BranchRecord:
    """A branch key as stored: its id (the period), the KMS key that wrapped it and the wrapped bytes."""

    branch_id: str
    kms_key_id: str  # the key id as configured (id, ARN or alias): a config change starts a new branch
    key_arn: str  # the KMS key ARN KMS reported; opening uses it
    wrapped_key: bytes = field(repr=False)
    created_at: str = ""


class BranchStore(Protocol):
    """Shared storage of branch records."""

    def get(self, branch_id: str) -> BranchRecord | None:
        """The stored record of ``branch_id``, or None."""
        ...

    def claim(self, record: BranchRecord) -> BranchRecord:
        """Store ``record`` unless a record for its branch under the same configured KMS key exists.

        Writes when the branch has no record, or when the stored one was made under another
        configured KMS key (the key was switched). Returns the record that is stored afterwards:
        ``record`` for the winner of a race, the winner's record for a loser.
        """
        ...


class InMemoryBranchStore:
    """A thread-safe, process-local :class:`BranchStore` (tests, tools)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, BranchRecord] = {}

    def get(self, branch_id: str) -> BranchRecord | None:
        """The stored record of ``branch_id``, or None."""
        with self._lock:
            return self._items.get(branch_id)

    def claim(self, record: BranchRecord) -> BranchRecord:
        """See :meth:`BranchStore.claim`."""
        with self._lock:
            found = self._items.get(record.branch_id)
            if found is None or found.kms_key_id != record.kms_key_id:
                self._items[record.branch_id] = record
                return record
            return found

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class DynamoBranchStore:
    """A :class:`BranchStore` in the single DynamoDB table (``PK="VAULT"``, ``SK="BRANCH#<period>"``)."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        """``dynamodb`` is a boto3 DynamoDB *client* (low-level API)."""
        self._ddb = dynamodb
        self._table = table_name

    @staticmethod
    def key(branch_id: str) -> dict[str, dict[str, str]]:
        """The item key of ``branch_id``."""
        return {PK: {"S": VAULT_PK}, SK: {"S": BRANCH_SK_PREFIX + branch_id}}

    def get(self, branch_id: str) -> BranchRecord | None:
        """The stored record of ``branch_id`` (strongly consistent read), or None."""
        try:
            resp = self._ddb.get_item(TableName=self._table, Key=self.key(branch_id), ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:  # nothing secret in them
            raise VaultUnavailableError("could not read the vault branch key") from exc
        item = resp.get("Item")
        return None if item is None else _from_item(branch_id, item)

    def claim(self, record: BranchRecord) -> BranchRecord:
        """Conditional put (absent, or made under another configured KMS key); a loser re-reads."""
        item = {
            **self.key(record.branch_id),
            "kms_key_id": {"S": record.kms_key_id},
            "key_arn": {"S": record.key_arn},
            "wrapped_key": {"B": record.wrapped_key},
            "created_at": {"S": record.created_at},
        }
        for _ in range(3):
            try:
                self._ddb.put_item(
                    TableName=self._table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(#pk) OR #kid <> :kid",
                    ExpressionAttributeNames={"#pk": PK, "#kid": "kms_key_id"},
                    ExpressionAttributeValues={":kid": {"S": record.kms_key_id}},
                )
                return record
            except (ClientError, BotoCoreError) as exc:  # nothing secret in them
                if _error_code(exc) != "ConditionalCheckFailedException":
                    raise VaultUnavailableError("could not store the vault branch key") from exc
            winner = self.get(record.branch_id)
            if winner is not None:
                return winner
            # The winner's item vanished between our put and our read (deleted by hand): try again.
        raise VaultUnavailableError("could not store the vault branch key")


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        error = response.get("Error")
        if isinstance(error, Mapping):
            return str(error.get("Code", ""))
    return ""


def _from_item(branch_id: str, item: Mapping[str, Any]) -> BranchRecord:
    try:
        return BranchRecord(
            branch_id=branch_id,
            kms_key_id=item["kms_key_id"]["S"],
            key_arn=item["key_arn"]["S"],
            wrapped_key=bytes(item["wrapped_key"]["B"]),
            created_at=item.get("created_at", {}).get("S", ""),
        )
    except (KeyError, TypeError) as exc:
        raise VaultUnavailableError("the stored vault branch key is malformed") from exc
