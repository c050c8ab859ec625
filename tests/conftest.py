"""Shared fixtures.

``local_stack`` — the whole local stack (moto + bootstrap, API gateway, SQS pumps, scheduler),
started once per session on loopback. While it runs, ``os.environ`` points the functions at it
(``AWS_ENDPOINT_URL``, ``TABLE_NAME``, queue URLs, ``API_URL`` …); it is restored at the end.
Tests that need a pristine AWS environment while it runs should ``monkeypatch`` those variables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from devstack.jwt import LocalIssuer
from devstack.stack import LocalStack


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The running local stack (its own signing key, so tests never touch the repo's .devstack/)."""
    issuer = LocalIssuer(tmp_path_factory.mktemp("devstack-keys"))
    with LocalStack(issuer=issuer) as stack:
        yield stack


@pytest.fixture
def api(local_stack: LocalStack) -> Iterator[httpx.Client]:
    """An HTTP client for the local API gateway."""
    with httpx.Client(base_url=local_stack.api_url, timeout=10) as client:
        yield client


@pytest.fixture
def mentor_headers(local_stack: LocalStack) -> Callable[..., dict[str, str]]:
    """``mentor_headers("m1", scope="a b")`` → ``{"authorization": "Bearer <jwt for m1>"}``."""

    def make(mentor_id: str = "mentor-1", **claims: object) -> dict[str, str]:
        return {"authorization": f"Bearer {local_stack.token(mentor_id, **claims)}"}

    return make
