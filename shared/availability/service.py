"""``GET`` / ``PUT /mentors/me/availability``: read and replace a mentor's rules (PRODUCT.md §2.10).

* ``GET`` before any ``PUT`` answers **200 with the defaults** (:data:`~shared.availability.rules.DEFAULT_RULES`:
  UTC, no weekly hours — so nothing is bookable — 120 minutes' notice, a 60-day horizon, a 30-minute
  step) and ``version: 0``, so the mentor app can show a form without a special case; nothing is written.
* ``PUT`` replaces the whole document after :func:`~shared.availability.rules.problems` found nothing
  (else 400 ``invalid_request`` with ``fields``) and answers what ``GET`` now answers. With ``version``
  (the one last read) a write that came in between answers 409 ``availability_changed``; without it
  the last write wins (still one conditional write, retried on a race).

A mentor only ever reads and writes its own item: the mentor id is the token's ``sub``.
"""

from __future__ import annotations

from datetime import datetime
from http import HTTPStatus
from typing import Final

from shared.availability.rules import (
    DEFAULT_RULES,
    AvailabilityRules,
    AvailabilityView,
    PutAvailabilityRequest,
    problems,
)
from shared.platform.api import ApiError
from shared.store.availability import AvailabilityStore
from shared.store.errors import ConflictError

_RACE_RETRIES: Final = 3


def _view(rules: AvailabilityRules, version: int) -> AvailabilityView:
    return AvailabilityView.model_validate({**rules.model_dump(), "version": version})


def current_rules(store: AvailabilityStore, mentor_id: str) -> tuple[AvailabilityRules, int]:
    """The mentor's rules and their version (the defaults and 0 before the first write)."""
    stored = store.get(mentor_id)
    if stored is None:
        return DEFAULT_RULES, 0
    return AvailabilityRules.model_validate(stored.doc), stored.version


def get_availability(store: AvailabilityStore, mentor_id: str) -> AvailabilityView:
    """What ``GET /mentors/me/availability`` answers."""
    return _view(*current_rules(store, mentor_id))


def put_availability(
    store: AvailabilityStore, mentor_id: str, body: PutAvailabilityRequest, *, now: datetime
) -> AvailabilityView:
    """Validate and store ``body`` as the mentor's rules; 400 / 409 as the module says."""
    rules = body.rules()
    found = problems(rules, now.date())
    if found:
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in found)
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_request", summary, fields=found)
    doc = rules.model_dump(by_alias=True, mode="json")
    for _ in range(_RACE_RETRIES):
        expected = body.version if body.version is not None else current_rules(store, mentor_id)[1]
        try:
            version = store.put(mentor_id, doc, expected_version=expected, now=now)
        except ConflictError:
            if body.version is not None:
                break
            continue
        return _view(rules, version)
    raise ApiError(
        HTTPStatus.CONFLICT,
        "availability_changed",
        "The availability changed since it was read; read it again and repeat the change.",
        currentVersion=current_rules(store, mentor_id)[1],
    )
