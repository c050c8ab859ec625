"""A fake of Google's ``events.watch`` / ``channels.stop`` for the push unit tests (imported by them)."""

from __future__ import annotations

from typing import Any

from shared.providers.google.channels import WatchedChannel


class FakeGoogleChannels:
    """events.watch / channels.stop as GooglePush's client sees them (tokens remembered, stops listed)."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.tokens: dict[str, str] = {}
        self.stopped: list[str] = []

    def watch(
        self, token: Any, calendar_id: str, *, channel_id: str, address: str, channel_token: Any, ttl_s: int
    ) -> WatchedChannel:
        self.tokens[channel_id] = channel_token.get_secret_value()
        expiration_ms = int((self.clock[0] + ttl_s) * 1000)
        return WatchedChannel(id=channel_id, resource_id=f"res-{calendar_id}", expiration_ms=expiration_ms)

    def stop(self, token: Any, *, channel_id: str, resource_id: str) -> bool:
        self.stopped.append(channel_id)
        return True
