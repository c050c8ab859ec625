"""Verifying a mentor's bearer JWT inside a function (routes that API Gateway's authorizer skips).

``GET /bookings/{id}`` and ``POST /bookings/{id}/cancel`` accept *either* a booking token *or* the
mentor's JWT. An HTTP API authorizer is all-or-nothing per route, so those routes have none and
the function checks the JWT itself, exactly as API Gateway's JWT authorizer would:

* RS256 only (no ``none``, no HMAC: a public key can never be used as a shared secret);
* the key named by the token's ``kid`` from the issuer's JWKS (``JWT_JWKS_URL``);
* ``iss`` = ``JWT_ISSUER``; ``aud`` contains one of ``JWT_AUDIENCE`` (comma-separated: the mentor
  app's and the platform's clients) or, for a token without ``aud`` (a Cognito access token), its
  ``client_id`` is one of them — API Gateway's rule; ``exp`` required and in the future (``nbf`` /
  ``iat`` honoured), ``sub`` required — with ``JWT_LEEWAY_S`` of clock skew (at most
  :data:`MAX_LEEWAY_S`).

Two principals carry such tokens (PRODUCT.md §2.9): a **mentor** (``sub`` = mentor id) and the
**platform's backend** (client credentials: the scope :func:`token_scopes` finds includes
``JWT_PLATFORM_SCOPE``, ``platform`` by default). :func:`is_platform` tells them apart.

The JWKS is fetched with a short timeout and cached per container for ``JWT_JWKS_TTL_S``; a token
signed with a key the cache does not know triggers one refetch (key rotation), at most once per
:data:`MIN_REFETCH_S` so garbage ``kid`` values cannot turn into a request storm.

JOSE comes from ``joserfc`` (the maintained successor of ``authlib.jose``, which authlib itself
deprecates and depends on); it and ``httpx`` are imported on first use only, keeping cold starts of
requests that carry a booking token free of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# re-exported: who a verified token is (kept in a module free of JOSE / HTTP imports)
from shared.platform.scopes import PLATFORM_SCOPE as PLATFORM_SCOPE
from shared.platform.scopes import is_platform as is_platform
from shared.platform.scopes import token_scopes as token_scopes

#: Never refetch the JWKS for an unknown ``kid`` more often than this.
MIN_REFETCH_S = 30.0
ALGORITHMS = ("RS256",)
#: The most clock skew any JWT check tolerates (``JWT_LEEWAY_S`` is validated against it).
MAX_LEEWAY_S = 5


class AuthError(Exception):
    """The bearer token is missing, malformed, badly signed, expired or not meant for this API.

    The message says which check failed; it never contains the token.
    """


class JwksUnavailable(AuthError):
    """The issuer's key set could not be fetched (network, status, or not a JWK Set)."""


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or ``None``."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


Fetch = Callable[[str, float], dict[str, Any]]


def _http_fetch(url: str, timeout_s: float) -> dict[str, Any]:
    import httpx

    from shared.platform.http import http_client

    try:
        resp = http_client(timeout_s).get(url, headers={"accept": "application/json"})
    except httpx.HTTPError as exc:
        raise JwksUnavailable(f"JWKS fetch failed: {type(exc).__name__}") from exc
    if resp.status_code != 200:
        raise JwksUnavailable(f"JWKS fetch answered {resp.status_code}")
    try:
        body = resp.json()
    except ValueError as exc:
        raise JwksUnavailable("JWKS is not JSON") from exc
    if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
        raise JwksUnavailable("JWKS has no 'keys' list")
    return body


@dataclass
class _Cached:
    keys: Any  # joserfc KeySet
    kids: frozenset[str]
    fetched_at: float


class JwtVerifier:
    """Verifies RS256 JWTs against one issuer's JWKS (cached with a TTL; thread-safe)."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str,
        ttl_s: float = 600.0,
        timeout_s: float = 3.0,
        leeway_s: int = MAX_LEEWAY_S,
        fetch: Fetch = _http_fetch,
        clock: Callable[[], float] = time.time,
    ) -> None:
        audiences = tuple(a.strip() for a in audience.split(",") if a.strip())
        if not (issuer and audiences and jwks_url):
            raise AuthError("JWT verification is not configured (JWT_ISSUER, JWT_AUDIENCE, JWT_JWKS_URL)")
        if not 0 <= leeway_s <= MAX_LEEWAY_S:
            raise AuthError(f"JWT leeway must be 0..{MAX_LEEWAY_S} s, not {leeway_s}")
        self.issuer = issuer
        self.audience = audience
        self.audiences = audiences
        self.jwks_url = jwks_url
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.leeway_s = leeway_s
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: _Cached | None = None
        self.fetches = 0

    # -- key set ---------------------------------------------------------------------------------
    def _load(self) -> _Cached:
        from joserfc.jwk import KeySet

        raw = self._fetch(self.jwks_url, self.timeout_s)
        self.fetches += 1
        usable = [
            k for k in raw["keys"] if isinstance(k, dict) and k.get("kty") == "RSA" and k.get("use") in (None, "sig")
        ]
        try:
            keys = KeySet.import_key_set({"keys": usable})
        except Exception as exc:  # joserfc raises several types for a malformed JWK
            raise JwksUnavailable(f"JWKS holds an unusable key: {type(exc).__name__}") from exc
        kids = frozenset(str(k["kid"]) for k in usable if "kid" in k)
        return _Cached(keys, kids, self._clock())

    def _keys(self, kid: str | None) -> Any:
        """The key set, fetched if absent or stale, refetched once if it lacks ``kid``."""
        with self._lock:
            now = self._clock()
            cached = self._cached
            stale = cached is None or now - cached.fetched_at >= self.ttl_s
            rotated = (
                cached is not None
                and kid is not None
                and kid not in cached.kids
                and now - cached.fetched_at >= MIN_REFETCH_S
            )
            if cached is None or stale or rotated:
                cached = self._cached = self._load()
            return cached.keys

    # -- verification ----------------------------------------------------------------------------
    def verify(self, token: str) -> dict[str, Any]:
        """The claims of ``token``; raises :class:`AuthError` on any failed check."""
        from joserfc import jwt
        from joserfc.errors import JoseError
        from joserfc.jws import extract_compact

        try:
            header = extract_compact(token.encode("ascii")).protected
        except (JoseError, ValueError, UnicodeError) as exc:
            raise AuthError("malformed token") from exc
        if header.get("alg") not in ALGORITHMS:
            raise AuthError("unsupported signing algorithm")
        kid = header.get("kid")
        keys = self._keys(str(kid) if kid is not None else None)
        try:
            decoded = jwt.decode(token, keys, algorithms=list(ALGORITHMS))
        except (JoseError, ValueError) as exc:
            raise AuthError(f"bad signature or unknown key ({type(exc).__name__})") from exc
        claims: dict[str, Any] = dict(decoded.claims)
        # API Gateway's rule: ``aud`` names one of the audiences, or (no ``aud``, as in a Cognito
        # access token) ``client_id`` does.
        has_aud = claims.get("aud") not in (None, "", [])
        if not has_aud:
            claims.pop("aud", None)
            if claims.get("client_id") not in self.audiences:
                raise AuthError("claims rejected (aud / client_id)")
        registry = jwt.JWTClaimsRegistry(
            leeway=self.leeway_s,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": has_aud, "values": list(self.audiences)},
            sub={"essential": True},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise AuthError(f"claims rejected ({type(exc).__name__}: {exc.description})") from exc
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise AuthError("claims rejected (sub)")
        return claims
