"""Which principal a JWT is (PRODUCT.md §2.9): a mentor, or the platform's backend by its scope.

Kept apart from :mod:`shared.platform.auth` (JWKS, joserfc, httpx) so every HTTP function can tell
the two apart from the claims API Gateway's authorizer delivered without importing any of that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The platform scope when ``JWT_PLATFORM_SCOPE`` is not set.
PLATFORM_SCOPE = "platform"


def token_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """The scopes a token grants, read as API Gateway's JWT authorizer reads them: the ``scope``
    claim (space-separated, RFC 8693 §4.2 / OAuth client credentials) or ``scp`` (a list, or a
    space-separated string). A claim that API Gateway already flattened to ``"[a b]"`` is read too.
    """
    found: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            text = value.strip()
            if name == "scp" and text.startswith("[") and text.endswith("]"):
                text = text[1:-1]
            found.update(text.split())
        elif isinstance(value, list | tuple):
            found.update(str(v) for v in value if isinstance(v, str) and v)
    return frozenset(found)


def is_platform(claims: Mapping[str, Any], platform_scope: str = PLATFORM_SCOPE) -> bool:
    """Whether the token is the platform's (it carries the platform scope)."""
    return platform_scope in token_scopes(claims)
