"""Logger, Tracer and Metrics for every function, plus secret masking.

All functions import ``logger``, ``tracer`` and ``metrics`` from here and decorate their handler in
the same order::

    @logger.inject_lambda_context(correlation_id_path=...)
    @tracer.capture_lambda_handler
    @metrics.log_metrics(capture_cold_start_metric=True)
    def lambda_handler(event, context): ...

The logger's formatter masks anything secret-shaped in the *rendered* line (so secrets hidden in
exception text, nested dicts or f-strings are caught too): bearer tokens, JWTs, Google/Zoom/Stripe
token shapes, Apple app-specific passwords, values of secret-named keys, and every plaintext the
vault has handed out in this process (see :func:`register_secret`).
"""

from __future__ import annotations

import json
import re
import threading
import warnings
from collections import OrderedDict
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

MASK = "*****"

# Shapes of secrets we handle. Keep them specific: masking ordinary ids would make logs useless.
_SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),  # JWT
    re.compile(r"\bya29\.[A-Za-z0-9._-]{8,}"),  # Google access token
    re.compile(r"\b1//[A-Za-z0-9._-]{8,}"),  # Google refresh token
    re.compile(r"\b(?:whsec|sk_live|sk_test|rk_live|rk_test)_[A-Za-z0-9]{8,}"),  # Stripe secrets
    re.compile(r"\b[a-z]{4}-[a-z]{4}-[a-z]{4}-[a-z]{4}\b"),  # Apple app-specific password
    re.compile(r"(?i)\bbasic\s+[A-Za-z0-9+/=]{8,}"),
)
# "access_token": "…", refresh_token=…, 'password': '…', client_secret: … (JSON, repr or form style).
_SECRET_KEYS = (
    r"access_token|refresh_token|id_token|client_secret|password|app_specific_password|"
    r"appSpecificPassword|secret|secret_token|authorization|code_verifier|plainToken|bookingToken|token"
)
_KEY_VALUE = re.compile(
    r"""(?ix)
    (?P<key>["']?(?:"""
    + _SECRET_KEYS
    + r""")["']?\s*[:=]\s*)
    (?P<q>\\?["']?)
    (?P<val>(?!\*{5})[^"'\s,&}\\]{4,})
    """
)

_registry_lock = threading.Lock()
_registered: OrderedDict[str, None] = OrderedDict()
_REGISTRY_MAX = 4096


def register_secret(value: str) -> None:
    """Remember ``value`` so that any log line containing it is masked (bounded, most recent kept)."""
    if len(value) < 6:
        return
    with _registry_lock:
        _registered[value] = None
        _registered.move_to_end(value)
        while len(_registered) > _REGISTRY_MAX:
            _registered.popitem(last=False)


def mask_secrets(text: str) -> str:
    """Return ``text`` with every secret-shaped substring replaced by ``*****``."""
    with _registry_lock:
        known = list(_registered)
    for value in known:
        # The raw value, and its JSON-escaped form as it appears inside a rendered JSON log line.
        for form in {value, json.dumps(value)[1:-1]}:
            if form in text:
                text = text.replace(form, MASK)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(MASK, text)
    return _KEY_VALUE.sub(lambda m: f"{m.group('key')}{m.group('q')}{MASK}", text)


class MaskingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter whose output has secrets masked."""

    def format(self, record: Any) -> str:
        return mask_secrets(super().format(record))


# A handler that publishes only the cold-start metric is normal; Powertools warns about it each time.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

logger = Logger(logger_formatter=MaskingFormatter())
#: X-Ray patches only what we call through: botocore here, httpx when a function first builds an
#: httpx client (:func:`trace_httpx`). Powertools' default patches every supported library that is
#: installed, which imports httpx, requests and sqlite3 into every cold start (35-40 ms of the feed's
#: and classes_api's cold import; ``bench/README.md``).
tracer = Tracer(patch_modules=("botocore",))
_httpx_traced = threading.Event()


def trace_httpx() -> None:
    """Trace outbound httpx calls from here on (call before building a client; idempotent, cheap)."""
    if not _httpx_traced.is_set():
        tracer.patch(("httpx",))
        _httpx_traced.set()


metrics = Metrics(namespace="MentorConnections")
