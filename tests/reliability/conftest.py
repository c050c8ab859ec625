"""Reliability tests (issue 8): storms, faults, races, fuzzing and canaries against the whole local stack.

Each test bounds its own size so the directory stays a few minutes of ``make test``; the functions
are pointed at the local providers (``tests/stack_fixtures.py``) for every test here.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _functions_use_local_providers(provider_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    return provider_env
