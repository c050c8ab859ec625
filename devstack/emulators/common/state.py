"""The state every emulator holds: lock, clock, faults, request log, base URL.

Rules: an emulator's state derives from :class:`EmulatorState`; every read or write of it happens
under ``state.lock`` (re-entrant). ``reset`` puts it back as it was built.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

from flask import request

from devstack.emulators.common.faults import FaultInjector
from devstack.emulators.common.util import Clock, JSONDict

# --------------------------------------------------------------------------------------------
# request log
# --------------------------------------------------------------------------------------------


class RequestLog:
    def __init__(self, maxlen: int = 5000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[JSONDict] = deque(maxlen=maxlen)
        self._seq = 0

    def add(self, entry: JSONDict) -> None:
        with self._lock:
            self._seq += 1
            entry["seq"] = self._seq
            self._entries.append(entry)

    def entries(self, path_prefix: str = "", method: str = "") -> list[JSONDict]:
        with self._lock:
            out = list(self._entries)
        if path_prefix:
            out = [e for e in out if str(e["path"]).startswith(path_prefix)]
        if method:
            out = [e for e in out if e["method"] == method.upper()]
        return out

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_BODY_CAP = 64 * 1024


def describe_request_body() -> JSONDict:
    raw = request.get_data(cache=True)
    out: JSONDict = {"body": raw[:_BODY_CAP].decode("utf-8", errors="replace")}
    ctype = request.mimetype or ""
    if ctype == "application/json" or (raw[:1] in (b"{", b"[")):
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            out["json"] = json.loads(raw) if raw else None
    if ctype == "application/x-www-form-urlencoded":
        out["form"] = request.form.to_dict(flat=True)
    return out


# --------------------------------------------------------------------------------------------
# state base
# --------------------------------------------------------------------------------------------


class EmulatorState:
    """Base for the per-emulator state: lock, clock, faults, request log, base URL."""

    name = "emulator"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.clock = Clock()
        self.faults = FaultInjector()
        self.requests = RequestLog()
        self.base_url = ""

    def now(self) -> float:
        return self.clock.now()

    # Token operations the shared admin routes call; each emulator implements them.
    settings: Any
    deny_next: int

    def apply_settings(self, changes: Mapping[str, Any]) -> Any:
        """Set known settings (all or nothing); an unknown name raises ``ValueError``."""
        with self.lock:
            unknown = [key for key in changes if not hasattr(self.settings, key)]
            if unknown:
                raise ValueError(f"unknown setting {unknown[0]}")
            for key, value in changes.items():
                setattr(self.settings, key, value)
            return self.settings

    def revoke_token(self, token: str) -> bool:
        """Revoke one token server-side (and what the provider revokes with it)."""
        raise NotImplementedError

    def revoke_user(self, email: str) -> int:
        """Revoke every token of a user; returns how many."""
        raise NotImplementedError

    def expire_access_tokens(self, email: str | None = None, token: str | None = None) -> int:
        """Expire access tokens now (all, a user's, or one); returns how many."""
        raise NotImplementedError

    # Subclasses extend these.
    def snapshot(self) -> JSONDict:
        return {
            "emulator": self.name,
            "base_url": self.base_url,
            "clock_offset_seconds": self.clock.offset,
            "faults": self.faults.config.to_json(),
            "faults_injected": list(self.faults.injected),
            "latency_spikes": list(self.faults.spikes),
            "request_count": len(self.requests.entries()),
        }

    def reset(self) -> None:
        self.clock.reset()
        self.faults.reset()
        self.requests.clear()
