"""One forced refresh when a provider refuses a token we believed valid (PRODUCT.md §2.6).

A provider may answer 401 to an access token that has not expired (revoked server-side, rotated
keys, a clock skew). :func:`with_fresh_token` gives every worker the same answer: one forced
refresh — :meth:`shared.providers.credentials.CredentialAccessor.access_token` with ``reject=``,
which refreshes under the credential's lease only while the stored token is still the rejected
one, so fifty callers that saw the same 401 make one refresh — then one retry. A second refusal
is the caller's to handle, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from pydantic import SecretStr

from shared.platform.observability import logger
from shared.store.models import Provider

T = TypeVar("T")


class TokenSource(Protocol):
    """``tokens(mentor_id, provider)`` → access token; ``reject=`` forces a refresh (see ``access_token``)."""

    def __call__(self, mentor_id: str, provider: Provider, /, *, reject: SecretStr | None = None) -> SecretStr: ...


def with_fresh_token(
    token: SecretStr,
    call: Callable[[SecretStr], T],
    refresh: Callable[[SecretStr], SecretStr],
    *,
    auth_error: type[BaseException] | tuple[type[BaseException], ...],
) -> T:
    """``call(token)``; if the provider refuses the token (``auth_error``: its 401), one forced refresh, one retry.

    ``refresh(rejected)`` is the worker's ``tokens(mentor_id, provider, reject=rejected)`` (it may
    raise :class:`ConnectionUnavailable` when the grant is dead: ``needs_reconnect`` as ever). A
    second refusal propagates to the caller, who handles it as before. Every OAuth provider's
    worker (Google, Zoom, next Microsoft) goes through here.
    """
    try:
        return call(token)
    except auth_error:
        logger.info("provider refused an access token we believed valid; forcing one refresh")
    return call(refresh(token))
