"""Deliveries to the app's endpoints: change and lifecycle notifications from one background
thread, in order, and the synchronous ``validationToken`` handshake of a new subscription.

Rules (NOTES-msgraph §6): a notification is a JSON POST; without a 2xx it is tried again
(``notification_attempts`` in all, ``notification_retry_ms`` apart; Graph keeps trying for hours);
every attempt is recorded in ``state.deliveries``. The handshake POSTs
``?validationToken=<token>`` (``text/plain``) and passes only on a 200 whose ``text/plain`` body
is the decoded token, within ``validation_timeout_seconds``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

import httpx

from devstack.emulators.common import Dispatcher, JSONDict

if TYPE_CHECKING:
    from devstack.emulators.microsoft.state import MicrosoftState


class Notifier(Dispatcher[JSONDict]):
    """Delivers notifications in order from one background thread (:class:`common.Dispatcher`)."""

    def __init__(self, state: MicrosoftState) -> None:
        super().__init__("microsoft-notify", self._deliver)
        self.state = state
        self._client = httpx.Client(timeout=5.0)

    def stop(self) -> None:
        super().stop()
        self._client.close()

    def _deliver(self, record: JSONDict) -> None:
        with self.state.lock:
            attempts = max(1, self.state.settings.notification_attempts)
            pause = self.state.settings.notification_retry_ms / 1000
        for attempt in range(1, attempts + 1):
            entry = {**record, "attempt": attempt, "sent_at": self.state.now()}
            try:
                resp = self._client.post(str(record["url"]), json=record["payload"])
                entry["status"] = resp.status_code
            except httpx.HTTPError as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
            with self.state.lock:
                self.state.deliveries.append(entry)
            if 200 <= int(entry.get("status", 0)) < 300 or attempt == attempts:
                return
            time.sleep(pause)


def validation_token(subscription_id: str) -> str:
    """An opaque token shaped like Graph's (spaces and colons: it must be URL-decoded to echo)."""
    return f"Validation: Testing client application reachability for subscription Request-Id: {subscription_id}"


def validate_endpoint(url: str, token: str, timeout: float) -> JSONDict:
    """POST ``url?validationToken=...`` and judge the answer; returns a record with ``ok``."""
    parts = urlsplit(url)
    target = url + ("&" if parts.query else "?") + urlencode({"validationToken": token})
    record: JSONDict = {"url": url, "ok": False}
    started = time.monotonic()
    try:
        resp = httpx.post(target, content=b"", headers={"Content-Type": "text/plain; charset=utf-8"}, timeout=timeout)
    except httpx.TimeoutException:
        record["error"] = f"no answer within {timeout:g} s"
        return record
    except httpx.HTTPError as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
        return record
    record["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
    record["status"] = resp.status_code
    ctype = resp.headers.get("content-type", "")
    if resp.status_code != 200:
        record["error"] = f"answered {resp.status_code}, not 200"
    elif not ctype.lower().startswith("text/plain"):
        record["error"] = f"answered Content-Type {ctype or 'none'}, not text/plain"
    elif resp.text != token:
        record["error"] = "the body is not the decoded validationToken"
    else:
        record["ok"] = True
    return record
