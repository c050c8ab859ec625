"""PRODUCT.md §3 rows that no function serves yet, each with the open issue that builds it.

The contract tests (tests/unit/test_openapi_doc.py, tests/infra/test_routes.py) check both ways:
every other row has its route, and each row listed here still has none — so this list shrinks the
day a route lands and can never hide a route that exists.
"""

from __future__ import annotations

PENDING: dict[tuple[str, str], str] = {}


def pending(method: str, path: str) -> bool:
    """Whether PRODUCT.md's ``method path`` is still to be built."""
    return (method, path) in PENDING


def pending_path(path: str) -> bool:
    """Whether every method PRODUCT.md names for the concrete ``path`` is still to be built."""
    return any(p == path for _, p in PENDING)
