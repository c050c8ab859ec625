"""A test-only Lambda function: tells which module object ("container") served the request and
whether another request was running in that same object at the time."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

_lock = threading.Lock()
_busy = False


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _busy
    with _lock:
        overlapped = _busy
        _busy = True
    try:
        time.sleep(0.15)
    finally:
        with _lock:
            _busy = False
    primary = sys.modules.get(__name__)
    return {
        "container": id(globals()),
        "overlap": overlapped,
        "primary": primary is not None and primary.__dict__ is globals(),
    }
