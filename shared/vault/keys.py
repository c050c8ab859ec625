"""Branch keys and the in-memory key cache: the "hierarchical keyring" idea, written by hand.

AWS's Encryption SDK / Material Providers Library ship a hierarchical keyring that does this, but
they are heavy for a Lambda cold start (and pull in a native/Dafny runtime); what we need is small:

* one **branch key** per period (day / month / year): 32 random bytes from KMS ``GenerateDataKey``,
  shared by all processes through the table (conditional put; the loser of a race re-reads), so
  there is at most one ``GenerateDataKey`` per period cluster-wide;
* the plaintext branch keys are held in a bounded :class:`KeyCache` (max age, max uses, max
  entries) keyed by ``sha256(wrapped key)``, so a warm process makes one KMS ``Decrypt`` per branch
  per cache lifetime instead of one per record.

Rotation: every sealed record carries the KMS key ARN and its own wrapped branch key, so records
stay readable whatever the configuration says now (KMS's automatic rotation keeps the ARN and is
transparent). Switching ``KMS_KEY_ID`` to another key starts a new branch for the current period
under that key (the period's branch item is replaced); :meth:`shared.vault.Vault.reseal` moves old
records over. Re-pointing an *alias* without changing ``KMS_KEY_ID`` takes effect at the next period,
since the configured id is unchanged; configure the new key's id or ARN to switch at once.
During a rollout where processes disagree on the key, each may replace the item when its cached
copy ages out: a few extra ``GenerateDataKey`` calls, never an unreadable record.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from shared.vault.branch_store import BranchRecord, BranchStore
from shared.vault.envelope import KEY_BYTES, Header
from shared.vault.errors import VaultError, VaultIntegrityError, VaultUnavailableError

Period = Literal["day", "month", "year"]

APP: Final = "mentor-connections"
PURPOSE: Final = "vault-branch-key"
# KMS answers that mean "this wrapped key (or the key id next to it) is not valid": the record is bad.
_INTEGRITY_CODES: Final = frozenset(
    {
        "InvalidCiphertextException",
        "IncorrectKeyException",
        "NotFoundException",
        "ValidationException",
        "InvalidKeyUsageException",
    }
)


class _DropKmsPlaintext(logging.Filter):
    """Drops botocore DEBUG records that would print a KMS response body with a ``Plaintext`` key.

    botocore logs every response body at DEBUG (``botocore.parsers``): with DEBUG logging turned on,
    GenerateDataKey / Decrypt answers would put plaintext branch keys in the logs. Filters on a
    logger only run for records it would emit, so this costs nothing when DEBUG is off.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return "Plaintext" not in record.getMessage()
        except Exception:  # a record we cannot render is not worth the risk
            return False


_PLAINTEXT_FILTER: Final = _DropKmsPlaintext()


def guard_botocore_logs() -> None:
    """Install the KMS-plaintext filter on botocore's loggers (idempotent; done at import)."""
    for name in ("botocore.parsers", "botocore.endpoint", "botocore.awsrequest", "botocore.retryhandler"):
        target = logging.getLogger(name)
        if _PLAINTEXT_FILTER not in target.filters:
            target.addFilter(_PLAINTEXT_FILTER)


guard_botocore_logs()


class KmsApi(Protocol):
    """The two KMS operations the vault uses (a boto3 KMS client satisfies it)."""

    def generate_data_key(self, **kwargs: Any) -> Mapping[str, Any]:
        """KMS GenerateDataKey."""
        ...

    def decrypt(self, **kwargs: Any) -> Mapping[str, Any]:
        """KMS Decrypt."""
        ...


def branch_period(now: datetime, period: Period) -> str:
    """The branch id for ``now`` (UTC): ``"2026-11-21"``, ``"2026-11"`` or ``"2026"``."""
    now = now.astimezone(UTC)
    if period == "day":
        return now.strftime("%Y-%m-%d")
    if period == "month":
        return now.strftime("%Y-%m")
    return now.strftime("%Y")


def encryption_context(branch_id: str) -> dict[str, str]:
    """The KMS encryption context a branch key is wrapped under."""
    return {"app": APP, "purpose": PURPOSE, "branch": branch_id}


def wrapped_digest(wrapped_key: bytes) -> bytes:
    """The cache key of a wrapped branch key."""
    return hashlib.sha256(wrapped_key).digest()


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters of a :class:`KeyCache` (for benchmarks and metrics)."""

    hits: int
    loads: int
    expired: int
    evicted: int
    size: int


@dataclass(slots=True)
class _Entry:
    value: bytes
    created: float
    uses: int = 0


class KeyCache:
    """A thread-safe cache of plaintext branch keys with bounded age, uses and entry count.

    An entry is served at most ``max_uses`` times (its load counts as one) and for at most
    ``max_age_s`` seconds of ``clock`` after it was stored; the least recently used entry is
    dropped when there are more than ``max_entries``. ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        *,
        max_age_s: float = 300.0,
        max_uses: int = 1000,
        max_entries: int = 128,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_age_s <= 0 or max_uses <= 0 or max_entries <= 0:
            raise ValueError("cache bounds must be positive")
        self.max_age_s = max_age_s
        self.max_uses = max_uses
        self.max_entries = max_entries
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        # Striped locks so that concurrent misses of one key make a single KMS call (single flight).
        self._load_locks = tuple(threading.Lock() for _ in range(16))
        self._hits = self._loads = self._expired = self._evicted = 0

    def __repr__(self) -> str:
        return f"KeyCache(size={len(self)}, max_age_s={self.max_age_s}, max_uses={self.max_uses})"

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: bytes) -> bytes | None:
        """The cached value of ``key`` (counting one use), or None if absent, too old or used up."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self.clock() - entry.created >= self.max_age_s or entry.uses >= self.max_uses:
                del self._entries[key]
                self._expired += 1
                return None
            entry.uses += 1
            self._entries.move_to_end(key)
            self._hits += 1
            return entry.value

    def put(self, key: bytes, value: bytes, *, uses: int = 0) -> None:
        """Store ``value`` under ``key`` (replacing any entry), already used ``uses`` times."""
        with self._lock:
            self._entries[key] = _Entry(value=value, created=self.clock(), uses=uses)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                self._evicted += 1

    def get_or_load(self, key: bytes, load: Callable[[], bytes]) -> bytes:
        """The cached value of ``key``, or ``load()``'s result (stored, counted as one use)."""
        found = self.get(key)
        if found is not None:
            return found
        with self._load_locks[key[0] % len(self._load_locks) if key else 0]:
            found = self.get(key)  # another thread may have loaded it while we waited
            if found is not None:
                return found
            value = load()
            with self._lock:
                self._loads += 1
            self.put(key, value, uses=1)
            return value

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()

    def stats(self) -> CacheStats:
        """A snapshot of the counters."""
        with self._lock:
            return CacheStats(self._hits, self._loads, self._expired, self._evicted, len(self._entries))


@dataclass(frozen=True, slots=True)
class BranchKey:
    """A usable branch key: its record plus the plaintext key (never shown by repr)."""

    record: BranchRecord
    key: bytes = field(repr=False)


class BranchKeyring:
    """Finds the current branch key (creating it once per period) and unwraps old ones, via the cache."""

    def __init__(
        self,
        *,
        kms: KmsApi,
        store: BranchStore,
        kms_key_id: str,
        period: Period = "month",
        cache: KeyCache | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._kms = kms
        self._store = store
        self.kms_key_id = kms_key_id
        self.period = period
        self.cache = cache if cache is not None else KeyCache()
        self._now = now or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._current: tuple[BranchRecord, float] | None = None

    def current_record(self) -> BranchRecord:
        """The current period's branch record (re-read from the store at most once per cache max age)."""
        with self._lock:
            branch_id = branch_period(self._now(), self.period)
            now = self.cache.clock()
            if self._current is not None:
                record, loaded_at = self._current
                if (
                    record.branch_id == branch_id
                    and record.kms_key_id == self.kms_key_id
                    and now - loaded_at < self.cache.max_age_s
                ):
                    return record
            record_or_none = self._store.get(branch_id)
            if record_or_none is None or record_or_none.kms_key_id != self.kms_key_id:
                record = self._create(branch_id)
            else:
                record = record_or_none
            self._current = (record, now)
            return record

    def current(self) -> BranchKey:
        """The current branch key with its plaintext (one cache use)."""
        record = self.current_record()
        return BranchKey(record=record, key=self._unwrap(record.key_arn, record.branch_id, record.wrapped_key))

    def unwrap(self, header: Header) -> bytes:
        """The plaintext branch key of a sealed blob's header (one cache use; KMS on a miss)."""
        return self._unwrap(header.key_arn, header.branch_id, header.wrapped_key)

    def _unwrap(self, key_arn: str, branch_id: str, wrapped_key: bytes) -> bytes:
        return self.cache.get_or_load(
            wrapped_digest(wrapped_key), lambda: self._kms_decrypt(key_arn, branch_id, wrapped_key)
        )

    def _create(self, branch_id: str) -> BranchRecord:
        try:
            resp = self._kms.generate_data_key(
                KeyId=self.kms_key_id, KeySpec="AES_256", EncryptionContext=encryption_context(branch_id)
            )
        except (ClientError, BotoCoreError) as exc:
            raise _kms_error(exc, "GenerateDataKey", integrity=False) from exc
        plaintext, wrapped = bytes(resp["Plaintext"]), bytes(resp["CiphertextBlob"])
        mine = BranchRecord(
            branch_id=branch_id,
            kms_key_id=self.kms_key_id,
            key_arn=str(resp["KeyId"]),
            wrapped_key=wrapped,
            created_at=self._now().astimezone(UTC).isoformat(),
        )
        winner = self._store.claim(mine)
        if winner.wrapped_key != mine.wrapped_key and winner.kms_key_id == self.kms_key_id:
            # We lost the race: use the winner's key (unwrapped on first use), forget ours.
            return winner
        # We won (or, during a rollout that switches keys, another configuration holds the item:
        # our key is still valid because every sealed record carries its own wrapped key).
        self.cache.put(wrapped_digest(wrapped), plaintext)
        return mine

    def _kms_decrypt(self, key_arn: str, branch_id: str, wrapped_key: bytes) -> bytes:
        try:
            resp = self._kms.decrypt(
                CiphertextBlob=wrapped_key, KeyId=key_arn, EncryptionContext=encryption_context(branch_id)
            )
        except (ClientError, BotoCoreError) as exc:
            raise _kms_error(exc, "Decrypt", integrity=True) from exc
        plaintext = bytes(resp["Plaintext"])
        if len(plaintext) != KEY_BYTES or resp.get("KeyId", key_arn) != key_arn:
            raise VaultIntegrityError("KMS returned an unexpected branch key")
        return plaintext


def _kms_error(exc: ClientError | BotoCoreError, operation: str, *, integrity: bool) -> VaultError:
    """Map a botocore error to a VaultError (its message carries the error code, nothing else)."""
    response = getattr(exc, "response", None)
    code = ""
    if isinstance(response, Mapping):
        code = str(response.get("Error", {}).get("Code", ""))
    if integrity and code in _INTEGRITY_CODES:
        return VaultIntegrityError(f"KMS {operation} rejected the wrapped branch key ({code})")
    return VaultUnavailableError(f"KMS {operation} failed ({code or type(exc).__name__})")
