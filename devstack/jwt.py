"""The local identity provider: RS256 JWTs the local API Gateway's JWT authorizer accepts.

In AWS, API Gateway's JWT authorizer checks the mentor app's tokens; on a laptop this module plays
both parts. The RSA key pair is generated on first use and kept in the devstack directory
(``<repo>/.devstack/`` — git-ignored — or ``$DEVSTACK_DIR``), so ``python -m devstack token``
and a running ``python -m devstack up`` agree without talking to each other.

    >>> token = issue("mentor-1", plan="pro")
    >>> verify(token)["sub"]
    'mentor-1'

The platform's backend (PRODUCT.md §2.9) gets a client-credentials token from the same issuer:
:meth:`LocalIssuer.issue_platform` (``python -m devstack token --platform``) — ``sub`` and
``client_id`` name the client, ``scope`` carries the platform scope, as Cognito / OAuth servers
issue them. Verification tolerates ``JWT_LEEWAY_S`` of clock skew (the one leeway setting every JWT
check uses, at most 5 s).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Final

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER: Final = "mentor-connections-local"
AUDIENCE: Final = "mentor-connections"
ALGORITHM: Final = "RS256"
PRIVATE_KEY_FILE: Final = "jwt-private-key.pem"
#: The platform backend's client id locally (its tokens' ``sub`` and ``client_id``).
PLATFORM_CLIENT_ID: Final = "platform-backend"
REPO_ROOT: Final = Path(__file__).resolve().parents[1]


def devstack_dir() -> Path:
    """Where the local stack keeps its state: ``$DEVSTACK_DIR`` or ``<repo>/.devstack``."""
    override = os.environ.get("DEVSTACK_DIR")
    return Path(override) if override else REPO_ROOT / ".devstack"


class TokenError(Exception):
    """The token is missing, malformed, badly signed, expired or not meant for this API."""


def configured_leeway_s() -> int:
    """``JWT_LEEWAY_S`` (``shared.platform.config.AuthSettings``): the clock skew every JWT check allows."""
    from shared.platform.config import AuthSettings, settings

    return settings(AuthSettings).jwt_leeway_s


def platform_scope() -> str:
    """``JWT_PLATFORM_SCOPE``: the scope that makes a token the platform's."""
    from shared.platform.config import AuthSettings, settings

    return settings(AuthSettings).jwt_platform_scope


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _load_or_create_key(key_dir: Path) -> rsa.RSAPrivateKey:
    """The persisted private key; the first process to get here creates it (atomically)."""
    path = key_dir / PRIVATE_KEY_FILE
    if not path.exists():
        key_dir.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = key_dir / f".{PRIVATE_KEY_FILE}.{os.getpid()}.{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        try:
            os.link(tmp, path)  # fails if another process won the race: use its key
        except FileExistsError:
            pass
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise TokenError(f"{path} is not an RSA private key")
    return loaded


class LocalIssuer:
    """Issues and verifies RS256 tokens with the persisted key pair."""

    def __init__(
        self,
        key_dir: Path | None = None,
        *,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        leeway_s: int | None = None,
    ) -> None:
        self.key_dir = key_dir or devstack_dir()
        self.issuer = issuer
        self.audience = audience
        #: Clock skew allowed by :meth:`verify`; ``None`` reads ``JWT_LEEWAY_S`` at each check.
        self.leeway_s = leeway_s
        self._private_key = _load_or_create_key(self.key_dir)
        self._public_key = self._private_key.public_key()
        numbers = self._public_key.public_numbers()
        self._jwk = {"kty": "RSA", "e": _b64url_uint(numbers.e), "n": _b64url_uint(numbers.n)}
        # RFC 7638 thumbprint as key id.
        canonical = json.dumps(self._jwk, separators=(",", ":"), sort_keys=True).encode()
        self.kid = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()

    def issue(self, sub: str, ttl_s: int = 3600, **claims: Any) -> str:
        """A signed token for ``sub`` valid ``ttl_s`` seconds; ``claims`` add to or override the
        defaults (``iss``, ``aud``, ``iat``, ``exp``, ``jti``) — e.g. ``scope="a b"``."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": self.audience,
            "iat": now,
            "exp": now + ttl_s,
            "jti": uuid.uuid4().hex,
        }
        payload.update(claims)
        return pyjwt.encode(payload, self._private_key, algorithm=ALGORITHM, headers={"kid": self.kid})

    def issue_platform(self, ttl_s: int = 3600, *, client_id: str = PLATFORM_CLIENT_ID, **claims: Any) -> str:
        """A client-credentials token of the platform's backend: ``sub`` = ``client_id`` = the client,
        ``scope`` = the platform scope (``JWT_PLATFORM_SCOPE``); ``claims`` override."""
        defaults: dict[str, Any] = {"scope": platform_scope(), "client_id": client_id, "token_use": "access"}
        return self.issue(client_id, ttl_s, **{**defaults, **claims})

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of ``token``; raises :class:`TokenError` on a bad signature, an unknown key,
        expiry (or ``nbf`` in the future), a wrong issuer or audience, or a missing ``exp``/``sub``.
        """
        try:
            header = pyjwt.get_unverified_header(token)
            if header.get("kid") not in (None, self.kid):
                raise TokenError("unknown signing key")
            claims: dict[str, Any] = pyjwt.decode(
                token,
                self._public_key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "sub"]},
                leeway=self.leeway_s if self.leeway_s is not None else configured_leeway_s(),
            )
        except pyjwt.PyJWTError as exc:
            raise TokenError(str(exc)) from exc
        return claims

    def jwks(self) -> dict[str, Any]:
        """The public key as a JWK Set (served at the gateway's ``/.well-known/jwks.json``)."""
        return {"keys": [{**self._jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}]}


_default: LocalIssuer | None = None
_default_lock = threading.Lock()


def default_issuer() -> LocalIssuer:
    """The issuer for :func:`devstack_dir` (created on first use, then cached)."""
    global _default
    with _default_lock:
        if _default is None or _default.key_dir != devstack_dir():
            _default = LocalIssuer()
        return _default


def issue(sub: str, ttl_s: int = 3600, **claims: Any) -> str:
    """A bearer token for ``sub`` that the local gateway accepts."""
    return default_issuer().issue(sub, ttl_s, **claims)


def verify(token: str) -> dict[str, Any]:
    """The claims of a token from :func:`issue`; raises :class:`TokenError` otherwise."""
    return default_issuer().verify(token)


def jwks() -> dict[str, Any]:
    return default_issuer().jwks()
