"""The local stack's outbox: every e-mail the functions sent through (moto's) SES.

moto's server publishes its backends' models at ``/moto-api/data.json``; SES v2 ``SendEmail``
lands there as ``RawMessage`` (raw MIME, what the booking e-mails use) or ``Message`` (simple
content). :func:`read_outbox` parses both into :class:`SentEmail` — what ``python -m devstack
outbox``, the demo and the end-to-end tests read.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class SentEmail:
    """One sent e-mail, decoded."""

    message_id: str
    to: tuple[str, ...]
    subject: str
    text: str
    html: str
    attachments: dict[str, bytes] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly view (attachments by name and size)."""
        return {
            "to": list(self.to),
            "subject": self.subject,
            "text": self.text,
            "attachments": {name: len(data) for name, data in self.attachments.items()},
        }


def _from_raw(message_id: str, raw: str) -> SentEmail:
    msg = email.message_from_string(raw, policy=email.policy.default)
    text = html = ""
    attachments: dict[str, bytes] = {}
    for part in msg.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename()
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if filename:
            attachments[filename] = data
        elif part.get_content_type() == "text/plain" and not text:
            text = data.decode(part.get_content_charset() or "utf-8")
        elif part.get_content_type() == "text/html" and not html:
            html = data.decode(part.get_content_charset() or "utf-8")
    to = tuple(a.strip() for a in str(msg.get("To", "")).split(",") if a.strip())
    return SentEmail(message_id, to, str(msg.get("Subject", "")), text, html, attachments)


def _from_simple(item: dict[str, Any]) -> SentEmail:
    destinations = item.get("destinations") or {}
    to = tuple(destinations.get("ToAddresses", [])) if isinstance(destinations, dict) else tuple(destinations)
    body = item.get("body") or ""
    return SentEmail(
        message_id=str(item.get("id", "")),
        to=to,
        subject=str(item.get("subject", "")),
        text=body if isinstance(body, str) else str(body),
        html=str(item.get("html_body") or ""),
    )


def read_outbox(aws_endpoint_url: str, *, timeout_s: float = 5.0) -> list[SentEmail]:
    """Every e-mail sent through the moto server at ``aws_endpoint_url``, in sending order."""
    data = httpx.get(aws_endpoint_url.rstrip("/") + "/moto-api/data.json", timeout=timeout_s).json()
    ses = data.get("ses", {})
    sent = [_from_raw(str(m.get("id", "")), str(m.get("raw_data", ""))) for m in ses.get("RawMessage", [])]
    sent += [_from_simple(m) for m in ses.get("Message", [])]
    return sent
