"""What an OAuth provider emulator holds besides its API data: clients, codes, tokens, who consents.

Rules:

* A provider's state derives from :class:`OAuthState`, typed by its client, code, access-token and
  refresh-token records (dataclasses). It implements ``add_user``/``has_user`` and the hooks named
  below; the OAuth server (:mod:`devstack.emulators.common.oauth_server`) and the admin routes only
  go through this class.
* Codes and tokens are issued through :meth:`OAuthState.new_token`, so a token factory (canary
  tests) can choose their values.
* :meth:`OAuthState.snapshot` lays out ``snapshot_head()``, the consent, the token records, then
  ``snapshot_tail()``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import Field, asdict
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from devstack.emulators.common.state import EmulatorState
from devstack.emulators.common.util import JSONDict

#: ``factory(kind)`` → the value to issue for ``kind`` (``"code"``, ``"access_token"``,
#: ``"refresh_token"``), or ``None`` for the emulator's own random one. Canary tests use it to make
#: the emulator hand out tokens they can look for (``set_token_factory`` on the emulators).
TokenFactory = Callable[[str], str | None]


class ClientRecord(Protocol):
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]
    client_id: str
    client_secret: str
    redirect_uris: list[str]


class Record(Protocol):
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]


class TokenRecord(Protocol):
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]
    token: str
    client_id: str
    revoked: bool


class AccessRecord(TokenRecord, Protocol):
    expires_at: float


C = TypeVar("C", bound=ClientRecord)
K = TypeVar("K", bound=Record)
A = TypeVar("A", bound=AccessRecord)
R = TypeVar("R", bound=TokenRecord)


class OAuthState(EmulatorState, Generic[C, K, A, R]):
    """Clients, codes, tokens, call logs and the consent knobs of one OAuth provider.

    ``clients``/``users`` seed it (and again on every reset); ``None`` takes the defaults."""

    def __init__(
        self,
        clients: Iterable[C] | None,
        users: Iterable[Mapping[str, Any]] | None,
        default_clients: Callable[[], list[C]],
        default_users: Callable[[], list[JSONDict]],
    ) -> None:
        super().__init__()
        self._seed_clients = list(clients) if clients is not None else default_clients()
        self._seed_users = [dict(u) for u in users] if users is not None else default_users()

    def _init_oauth(self) -> None:
        self.clients: dict[str, C] = {}
        self.codes: dict[str, K] = {}
        self.access_tokens: dict[str, A] = {}
        self.refresh_tokens: dict[str, R] = {}
        self.token_calls: list[JSONDict] = []
        self.grant_counts: Counter[str] = Counter()
        self.revoke_calls: list[JSONDict] = []
        self.authorize_calls: list[JSONDict] = []
        self.request_findings: list[JSONDict] = []
        self.consent_user: str | None = None  # sticky default consenting user
        self.next_consent_user: str | None = None  # one-shot
        self.deny_next: int = 0
        self.token_factory: TokenFactory | None = None

    def _seed(self, copy: Callable[[C], C]) -> None:
        """Register the seed clients (as copies) and users; the first user consents by default."""
        for c in self._seed_clients:
            self.clients[c.client_id] = copy(c)
        for u in self._seed_users:
            self.add_user(**u)
        if self._seed_users:
            self.consent_user = str(self._seed_users[0]["email"]).lower()

    def new_token(self, kind: str, make: Callable[[], str]) -> str:
        """The value to issue for ``kind``: the token factory's, if one is set and answers, else ``make()``."""
        factory = self.token_factory
        chosen = factory(kind) if factory is not None else None
        return chosen or make()

    # ---- hooks -----------------------------------------------------------------------------

    def add_user(self, email: str, **kw: Any) -> Any:
        raise NotImplementedError

    def has_user(self, email: str) -> bool:
        raise NotImplementedError

    def user_json(self, user: Any) -> JSONDict:
        """The user as the admin API shows it."""
        return asdict(user)

    def client_extras(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments of ``add_client`` beyond id, secret and redirect URIs (admin API)."""
        return {}

    def add_client(self, client_id: str, client_secret: str, redirect_uris: Iterable[str], **extra: Any) -> C:
        raise NotImplementedError

    def _add_client(
        self, client_id: str, client_secret: str, uris: list[str], make: Callable[[], C], update: Callable[[C], None]
    ) -> C:
        """Register a client; the same id and secret again only adds redirect URIs (and ``update``)."""
        with self.lock:
            existing = self.clients.get(client_id)
            if existing is not None and existing.client_secret == client_secret:
                for u in uris:
                    if u not in existing.redirect_uris:
                        existing.redirect_uris.append(u)
                update(existing)
                return existing
            client = make()
            self.clients[client_id] = client
            return client

    # ---- consent ---------------------------------------------------------------------------

    def choose_consent_user(self, email: str, *, sticky: bool) -> None:
        """``email`` consents next (``sticky``: every time); unknown users are created."""
        e = email.lower()
        if not self.has_user(e):
            self.add_user(e)
        if sticky:
            self.consent_user = e
        else:
            self.next_consent_user = e

    def on_consent_denied(self) -> None:
        """A denied consent also drops the one-shot choices."""
        self.next_consent_user = None

    def apply_consent_json(self, body: Mapping[str, Any]) -> None:
        """``{"email": ..., "sticky": bool, "deny": bool|int}`` from the admin API."""
        if body.get("email"):
            self.choose_consent_user(str(body["email"]), sticky=bool(body.get("sticky")))
        deny = body.get("deny")
        if deny is not None:
            self.deny_next = int(deny)

    # ---- snapshot --------------------------------------------------------------------------

    def consent_snapshot(self) -> JSONDict:
        return {
            "consent_user": self.consent_user,
            "next_consent_user": self.next_consent_user,
            "deny_next": self.deny_next,
        }

    def snapshot_head(self) -> JSONDict:
        return {}

    def snapshot_tail(self) -> JSONDict:
        return {}

    def snapshot(self) -> JSONDict:
        base = super().snapshot()
        now = self.now()
        base.update(self.snapshot_head())
        base["consent"] = self.consent_snapshot()
        base["authorize_calls"] = list(self.authorize_calls)
        base["codes"] = [asdict(c) for c in self.codes.values()]
        base["access_tokens"] = [{**asdict(t), "expired": t.expires_at <= now} for t in self.access_tokens.values()]
        base["refresh_tokens"] = [asdict(t) for t in self.refresh_tokens.values()]
        base["tokens_issued"] = {"access": len(self.access_tokens), "refresh": len(self.refresh_tokens)}
        base["tokens_revoked"] = {
            "access": sum(1 for t in self.access_tokens.values() if t.revoked),
            "refresh": sum(1 for t in self.refresh_tokens.values() if t.revoked),
        }
        base["token_calls"] = list(self.token_calls)
        base["token_calls_by_grant_type"] = dict(self.grant_counts)
        base["revoke_calls"] = list(self.revoke_calls)
        base.update(self.snapshot_tail())
        return base
