"""Feed: ``calendar_feed``, the teaching-schedule ``.ics`` behind ``GET /feeds/{token}`` (PRODUCT.md §2.8).

Public (the token in the path is the secret); read-only: the feed token's mentor (GetItem), the
mentor's classes (Query on GSI1 ``CLASSES#<mentor>``) and each class's sessions (Query). The route
itself is wired by :class:`~infra.constructs.api.Api` from ``devstack.routes.ROUTES``.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration
from constructs import Construct

from infra.constructs.function import GET, QUERY, Access, FunctionSpec
from infra.constructs.platform import Platform

FUNCTION: Final = "calendar_feed"
ACCESS: Final = Access(table=(GET, QUERY), index=(QUERY,))


class Feed(Construct):
    """The feed function."""

    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        self.function = platform.function(
            self,
            FunctionSpec(
                name=FUNCTION,
                description="GET /feeds/{token}.ics (text/calendar, ETag)",
                access=ACCESS,
                timeout=Duration.seconds(10),
                memory_mb=512,
            ),
        )
