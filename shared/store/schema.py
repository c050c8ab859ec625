"""The single DynamoDB table: one definition for infra (CDK) and the local stack (moto).

Key design (all keys are strings)::

    item                       PK                    SK                      GSI1PK / GSI1SK
    mentor profile             MENTOR#<mentorId>     PROFILE                 -
    provider connection        MENTOR#<mentorId>     CONN#<provider>         SYNC#<provider> / <mentorId>  (sparse:
                                                                             only calendar connections that sync)
    vault branch key           VAULT                 BRANCH#<period>         -
    OAuth state (single use)   OAUTH#<sha256(state)> STATE                   -   (mentor_id, provider, code_verifier,
                                                                             expires_at; ``ttl`` = created + 600 s)
    OAuth pending connection   OAUTHPENDING#<sha256(handle)>  PENDING   -   (mentor_id, provider, the vault's sealed
                                                                             credential for (mentor, provider), account
                                                                             label / id / plan / calendar ids,
                                                                             expires_at; ``ttl`` = created + 600 s)
    attempt counter            ATTEMPTS#<kind>#<key> COUNTER                 -   (count, last_at, blocked_until; kinds
                                                                             apple-mentor / apple-id = sha256(Apple ID);
                                                                             see shared.store.guards)
    breaker window / opening   BREAKER#<name>        WINDOW#<n> / OPEN       -   (count / open_until)
    seen marker (replays)      SEEN#<kind>#<key>     SEEN                    -   (zoom-signature#<sha256(signature)>;
                                                                             ``ttl`` = signed at + tolerance + 60 s)
    class                      CLASS#<classId>       CLASS                   CLASSES#<mentorId> / <created>#<classId>
    session                    CLASS#<classId>       SESSION#<sessionId>     -   (sessionId = <classId>-s<nn>)
    booking                    BOOKING#<bookingId>   BOOKING                 BOOKINGS#<sessionId> / <bookingId>
    seat hold (open holds)     CLASS#<classId>       HOLD#<sid>#<expiry ms>#<bookingId>  HOLDS#<expiry UTC hour> /
                                                                             <expiry ms:013d>#<bookingId>
    Stripe event processed     IDEMPOTENCY#stripe_webhook  stripe_event#<md5(event id)>  -   (Powertools Idempotency:
                                                                             status, data = first answer; ``ttl`` =
                                                                             processed + 7 days, see schedule.payments)
    Google push channel        CHANNEL#<channelId>   CHANNEL                 CHANNELS / <expiration ms:013d>#<channelId>
                                                                             (mentor, calendar, resource id, SHA-256
                                                                             of the token; see shared.store.channels)
    mentor → channel link      MENTOR#<mentorId>     CHANNEL#google#<channelId>  -   (copy of the channel's fields)
    Google watch retry         MENTOR#<mentorId>     PUSHRETRY#google        PUSHRETRY / <due ms:013d>#<mentorId>
    pending subscription state SUBSTATE#<sha256(clientState)>  SUBSTATE  -   (mentor_id, provider, state_hash,
                                                                             created_ms, strays {subscriptionId: ms};
                                                                             ``ttl`` = requested expiration + 1 day;
                                                                             see shared.store.subscription_states)
    timeline head              MENTOR#<mentorId>     TIMELINE                -   (version, classes {classId:
                                                                             [first start, last end]}; see
                                                                             shared.store.timeline)
    timeline hour bucket       MENTOR#<mentorId>     TIMELINE#<UTC hour>     -   (version, spans of private
                                                                             sessions {bookingId: {s, e, sid}};
                                                                             ``ttl`` = hour + 1 day)
    waiting for a reconnect    MENTOR#<mentorId>     WAITING#<bookingId>     -   (provider, session, reason; written in
                                                                             one transaction with the booking's
                                                                             needs_reconnect / not_connected; claim
                                                                             resume_id + queued_at; ``ttl`` = session
                                                                             end + 30 days; see shared.store.waiting)
    resume batch               MENTOR#<mentorId>     RESUME#<provider>#<resumeId>  -   (pending / created / waiting /
                                                                             failed / dropped booking-id sets, started
                                                                             list, summary_sent_at; ``ttl`` = + 30 days)
    feed token lookup          FEED#<sha256(token)>  FEED                    -   (mentor_id; see shared.feed.service)
    mentor's feed              MENTOR#<mentorId>     FEED                    -   (token_hash, sealed_token: the vault's
                                                                             blob for (mentor, "feed"), rotated_at)
    busy head                  MENTOR#<mentorId>     BUSY#<provider>         -   (current version, chunk count,
                                                                             synced_at, window, last error, Apple
                                                                             discovery cache)
    busy chunk                 MENTOR#<mentorId>     BUSY#<provider>#v<version>#<nnn>  -   (zlib of packed UTC
                                                                             second pairs, ≤ 40,000 blocks per chunk;
                                                                             see shared.store.busy)
    CalDAV calendar cache      MENTOR#<mentorId>     CALDAV#<sha256(url)[:32]>  -   (sync-token / ctag read before
                                                                             the objects, range, zlib of the busy-
                                                                             relevant objects and blocks; ``ttl`` 30 d;
                                                                             see shared.store.caldav_cache)
    meeting ref (drift repair) MEETREF#<provider>#<meetingId>  MEETREF  PREFLIGHT#<UTC start day> /
                                                                             <start ms:013d>#<sessionId>  (session,
                                                                             mentor, the start / end we last wrote,
                                                                             preflight_at; ``ttl`` = end + 1 day;
                                                                             see shared.store.meeting_index)
    (``ttl`` expires short-lived items such as OAuth state, and busy items 30 days after the last sync)

Access patterns:
    1. Read a mentor's profile (plan, e-mail, timezone)         GetItem  PK=MENTOR#id, SK=PROFILE
       Set the plan from a Stripe subscription event unless a  UpdateItem PK=MENTOR#id, SK=PROFILE if
       later one already did (out-of-order events)             plan_event_key absent or < the event's
    2. Read one connection of a mentor                          GetItem  PK=MENTOR#id, SK=CONN#provider
    3. List a mentor's connections (GET /connections)           Query    PK=MENTOR#id, SK begins_with CONN#
    4. Update a connection with optimistic locking              UpdateItem/PutItem with ``version = :expected``
    5. Delete a credential at once on disconnect                DeleteItem PK=MENTOR#id, SK=CONN#provider
    6. Find every calendar connection to poll (paged, sparse)   Query    GSI1 GSI1PK=SYNC#<provider>
    7. Share the vault's current branch key between processes   GetItem / conditional PutItem PK=VAULT
    8. Start an OAuth connect: store the state                  PutItem  PK=OAUTH#hash, attribute_not_exists(PK)
    9. Consume the state on the callback (single use)           DeleteItem PK=OAUTH#hash, attribute_exists(PK),
                                                                ReturnValues=ALL_OLD (a replay finds nothing)
    10. Create a class with all its sessions (all or nothing)     TransactWriteItems (≤ 99 sessions + the class)
    11. Read a class and its sessions (GET /classes/{id})         Query    PK=CLASS#id
    12. A session from its id alone (POST /bookings)              GetItem  PK=CLASS#<classId of sid>, SK=SESSION#sid
    13. Book a seat atomically (capacity)                         TransactWriteItems: session seats_taken < capacity
                                                                + booking attribute_not_exists(PK)
    14. Booking status change + seat counts together              TransactWriteItems conditional on the old status
    15. Bookings of a session (cancel / move fan-out)             Query    GSI1 GSI1PK=BOOKINGS#sid
    16. A mentor's classes (feed)                                 Query    GSI1 GSI1PK=CLASSES#mentorId
    17. Process a Stripe event id once                            PutItem  PK=IDEMPOTENCY#stripe_webhook, SK=<key>,
                                                                attribute_not_exists / expired / stale in-progress
    18. Verify a Google push notification by channel id           GetItem  PK=CHANNEL#<X-Goog-Channel-ID>, SK=CHANNEL
    19. Open / drop a channel with its mentor link                TransactWriteItems (2 Puts / 2 Updates / 2 Deletes)
    20. A mentor's channels (disconnect, calendar switch)         Query    PK=MENTOR#id, SK begins_with CHANNEL#google#
    21. Channels expiring before T (renewal, paged)               Query    GSI1 GSI1PK=CHANNELS, GSI1SK < <T ms>#
    22. Watch retries due before T (renewal, paged)               Query    GSI1 GSI1PK=PUSHRETRY, GSI1SK < <T ms>#
    23. Coalesce pushes / lease a renewal                         UpdateItem (link item / channel item) conditional on
                                                                sync_due_ms / renew_lease_until
    24. Serve a feed by its token (GET /feeds/{token}.ics)       GetItem  PK=FEED#<sha256(token)>, SK=FEED
    25. Create / rotate a mentor's feed token                     TransactWriteItems: lookup Put (attribute_not_exists)
                                                                [+ old lookup Delete] + mentor FEED Put / Update
                                                                conditional on the old token_hash
    26. Replace a connection's busy blocks (never seen empty)   PutItem chunks of version v, then UpdateItem the head
                                                                SET version = v if absent or < v (ALL_OLD names
                                                                the previous version), then DeleteItem its chunks
    27. A mentor's busy times, every source (GET /mentors/me/busy) Query PK=MENTOR#id, SK begins_with BUSY#
                                                                (consistent; heads + chunks; re-read on a race)
    28. Record a sync attempt that changed nothing (error)      UpdateItem PK=MENTOR#id, SK=BUSY#provider
    29. A session's holds that ended (booking a full session)   Query    PK=CLASS#cid, SK BETWEEN HOLD#sid# AND
                                                                HOLD#sid#<now ms> (consistent)
    30. Holds that ended in an hour (the sweep, paged)          Query    GSI1 GSI1PK=HOLDS#<hour>, GSI1SK < <now ms>#~
    29. Park / complete an OAuth connection (single use)        PutItem PK=OAUTHPENDING#hash attribute_not_exists;
                                                                DeleteItem attribute_exists, ReturnValues=ALL_OLD
    30. Count an Apple sign-in unless blocked                   UpdateItem PK=ATTEMPTS#… if last_at in the window
                                                                and blocked_until <= now (else PutItem a fresh one)
    31. Count an iCloud 401 / open the breaker                  UpdateItem ADD count PK=BREAKER#…, SK=WINDOW#n;
                                                                UpdateItem SK=OPEN if open_until < the new one
    32. Remember a Zoom signature once (replays)                PutItem PK=SEEN#… attribute_not_exists(PK)
    33. Read a mentor's time for a private session (consistent) BatchGetItem PK=MENTOR#id, SK=TIMELINE and
                                                                SK=TIMELINE#<hour> for each hour of the span ± buffers
    34. Claim it: one transaction                               ConditionCheck head version; Update / ConditionCheck
                                                                each bucket on its version; Put class, session,
                                                                booking, hold
    35. Private spans of a window (GET /slots, warnings)        Query PK=MENTOR#id, SK BETWEEN TIMELINE#<h0>
                                                                AND TIMELINE#<h1>
    36. Record a booking waiting for a reconnect with its marker TransactWriteItems: Update booking (status =
                                                                CONFIRMED) + Put PK=MENTOR#id, SK=WAITING#bid
    37. A reconnect's waiting bookings (no table scan)          Query PK=MENTOR#id, SK begins_with WAITING#
                                                                (consistent; the reconnected provider's kept)
    38. Re-queue once / settle / one summary                    UpdateItem marker if no live resume_id; UpdateItem
                                                                batch DELETE pending ADD <outcome> if pending
                                                                contains it; SET summary_sent_at if pending gone
    39. The booking no longer waits                             DeleteItem PK=MENTOR#id, SK=WAITING#bid, ALL_OLD
    40. Is this provider meeting ours, and of which session     GetItem  PK=MEETREF#<provider>#<id>, SK=MEETREF
        (Zoom meeting webhooks; Google push → changed events)
    41. Meetings starting within 24 h (pre-flight, paged)       Query    GSI1 GSI1PK=PREFLIGHT#<day> (today, tomorrow),
                                                                GSI1SK BETWEEN <now ms># AND <now + 24 h ms>#~
    42. Verify a meeting once                                   UpdateItem SET preflight_at if absent, start as read
    43. Send a repair e-mail to the mentor once                 UpdateItem session ADD repair_notes if NOT contains
    44. An Apple connection's calendar caches (busy sync)       BatchGetItem PK=MENTOR#id, SK=CALDAV#<hash> per listed
                                                                calendar; PutItem if read_at is older; DeleteItem
                                                                for a calendar no longer listed
    45. Remember a Graph clientState before the create          PutItem  PK=SUBSTATE#<sha256(clientState)>, SK=SUBSTATE
    46. Is an unknown subscription a stray of ours (webhook)    GetItem  PK=SUBSTATE#<sha256(clientState)> (consistent)
    47. Queue one delete per stray per window                   UpdateItem SET strays.<id> if absent or older
(see :mod:`shared.store.caldav_cache`, :mod:`shared.store.waiting`, :mod:`shared.store.meeting_index`,
:mod:`shared.store.timeline`, :mod:`shared.store.schedule`, :mod:`shared.schedule.payments`,
:mod:`shared.store.channels`, :mod:`shared.store.subscription_states`, :mod:`shared.feed.service` and
:mod:`shared.store.busy`)
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
