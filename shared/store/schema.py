"""The single DynamoDB table: one definition for infra (CDK) and the local stack (moto).

Key design (all keys are strings)::

    item                       PK                    SK                      GSI1PK / GSI1SK
    mentor profile             MENTOR#<mentorId>     PROFILE                 -
    provider connection        MENTOR#<mentorId>     CONN#<provider>         SYNC#<provider> / <mentorId>  (sparse:
                                                                             only calendar connections that sync)
    vault branch key           VAULT                 BRANCH#<period>         -
    OAuth state (single use)   OAUTH#<sha256(state)> STATE                   -   (mentor_id, provider, code_verifier,
                                                                             expires_at; ``ttl`` = created + 600 s)
    (later issues add classes, sessions, bookings, busy blocks and idempotency records under their
    own PK prefixes; ``ttl`` expires short-lived items such as OAuth state)

Access patterns:
    1. Read a mentor's profile (plan, e-mail, timezone)         GetItem  PK=MENTOR#id, SK=PROFILE
    2. Read one connection of a mentor                          GetItem  PK=MENTOR#id, SK=CONN#provider
    3. List a mentor's connections (GET /connections)           Query    PK=MENTOR#id, SK begins_with CONN#
    4. Update a connection with optimistic locking              UpdateItem/PutItem with ``version = :expected``
    5. Delete a credential at once on disconnect                DeleteItem PK=MENTOR#id, SK=CONN#provider
    6. Find every calendar connection to poll (paged, sparse)   Query    GSI1 GSI1PK=SYNC#<provider>
    7. Share the vault's current branch key between processes   GetItem / conditional PutItem PK=VAULT
    8. Start an OAuth connect: store the state                  PutItem  PK=OAUTH#hash, attribute_not_exists(PK)
    9. Consume the state on the callback (single use)           DeleteItem PK=OAUTH#hash, attribute_exists(PK),
                                                                ReturnValues=ALL_OLD (a replay finds nothing)
"""

from __future__ import annotations

from typing import Any, Final

PK: Final = "PK"
SK: Final = "SK"
GSI1: Final = "GSI1"
GSI1PK: Final = "GSI1PK"
GSI1SK: Final = "GSI1SK"
TTL_ATTRIBUTE: Final = "ttl"

#: Attribute definitions and indexes, in the shape of DynamoDB's CreateTable API.
KEY_SCHEMA: Final[list[dict[str, str]]] = [
    {"AttributeName": PK, "KeyType": "HASH"},
    {"AttributeName": SK, "KeyType": "RANGE"},
]
ATTRIBUTE_DEFINITIONS: Final[list[dict[str, str]]] = [
    {"AttributeName": PK, "AttributeType": "S"},
    {"AttributeName": SK, "AttributeType": "S"},
    {"AttributeName": GSI1PK, "AttributeType": "S"},
    {"AttributeName": GSI1SK, "AttributeType": "S"},
]
GLOBAL_SECONDARY_INDEXES: Final[list[dict[str, Any]]] = [
    {
        "IndexName": GSI1,
        "KeySchema": [
            {"AttributeName": GSI1PK, "KeyType": "HASH"},
            {"AttributeName": GSI1SK, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }
]


def create_table_kwargs(table_name: str) -> dict[str, Any]:
    """Arguments for ``dynamodb.create_table`` (the local stack and tests use this)."""
    return {
        "TableName": table_name,
        "KeySchema": KEY_SCHEMA,
        "AttributeDefinitions": ATTRIBUTE_DEFINITIONS,
        "GlobalSecondaryIndexes": GLOBAL_SECONDARY_INDEXES,
        "BillingMode": "PAY_PER_REQUEST",
    }


def create_table(dynamodb: Any, table_name: str) -> None:
    """Create the table (and its TTL setting) with a boto3 DynamoDB client; no-op if it exists."""
    try:
        dynamodb.create_table(**create_table_kwargs(table_name))
    except dynamodb.exceptions.ResourceInUseException:
        return
    dynamodb.get_waiter("table_exists").wait(TableName=table_name)
    dynamodb.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
