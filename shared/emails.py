"""Transactional e-mails sent through Amazon SES (API v2).

Only what the token lifecycle needs for now: the "reconnect your account" e-mail a mentor gets
once when a provider revokes our refresh token (PRODUCT.md §2.3).

The sender is ``SENDER_EMAIL`` (default ``noreply@mentor-connections.local``); links point at
``APP_URL`` (see :class:`shared.config.BaseFunctionSettings`).
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from typing import Any

from shared.observability import logger
from shared.store.models import Provider
from shared.store.repository import Store

DEFAULT_SENDER = "noreply@mentor-connections.local"
CONNECTIONS_PATH = "/mentor/settings/connections"

_DISPLAY_NAMES = {Provider.GOOGLE: "Google", Provider.ZOOM: "Zoom", Provider.APPLE: "Apple"}


def default_sender() -> str:
    """The From address: ``SENDER_EMAIL`` or :data:`DEFAULT_SENDER`."""
    return os.environ.get("SENDER_EMAIL") or DEFAULT_SENDER


def provider_display_name(provider: Provider | str) -> str:
    """``"Google"``, ``"Zoom"`` or ``"Apple"``."""
    return _DISPLAY_NAMES[Provider(provider)]


def reconnect_subject(provider: Provider | str) -> str:
    """Subject line of the reconnect e-mail, e.g. ``"Reconnect your Zoom account"``."""
    return f"Reconnect your {provider_display_name(provider)} account"


def send_reconnect_email(
    mentor_email: str,
    provider: Provider | str,
    *,
    ses_client: Any,
    sender: str | None = None,
    app_url: str,
) -> str:
    """E-mail ``mentor_email`` that their ``provider`` connection must be reconnected.

    Sends one SES v2 ``SendEmail`` with Simple content (HTML and text bodies) linking to
    ``<app_url>/mentor/settings/connections``; returns the SES message id. ``sender`` defaults to
    :func:`default_sender`. SES errors propagate (``botocore`` ``ClientError``).
    """
    name = provider_display_name(provider)
    link = app_url.rstrip("/") + CONNECTIONS_PATH
    subject = reconnect_subject(provider)
    text = (
        f"Hello,\n\n"
        f"{name} no longer accepts the access you granted to Mentor Connections, so we cannot "
        f"create meetings or read your calendar through {name} until you reconnect it.\n\n"
        f"Reconnect it here: {link}\n\n"
        f"If you disconnected {name} on purpose you can ignore this e-mail.\n"
    )
    safe_link = html.escape(link, quote=True)
    body_html = (
        "<!doctype html><html><body>"
        "<p>Hello,</p>"
        f"<p>{name} no longer accepts the access you granted to Mentor Connections, so we cannot "
        f"create meetings or read your calendar through {name} until you reconnect it.</p>"
        f'<p><a href="{safe_link}">Reconnect your {name} account</a></p>'
        f"<p>If you disconnected {name} on purpose you can ignore this e-mail.</p>"
        "</body></html>"
    )
    response = ses_client.send_email(
        FromEmailAddress=sender or default_sender(),
        Destination={"ToAddresses": [mentor_email]},
        Content={
            "Simple": {
                "Subject": {"Data": subject, "Charset": "UTF-8"},
                "Body": {
                    "Text": {"Data": text, "Charset": "UTF-8"},
                    "Html": {"Data": body_html, "Charset": "UTF-8"},
                },
            }
        },
    )
    return str(response.get("MessageId", ""))


def reconnect_notifier(
    store: Store,
    *,
    ses_client: Any | None = None,
    sender: str | None = None,
    app_url: str | None = None,
) -> Callable[[str, Provider], None]:
    """A ``on_reconnect(mentor_id, provider)`` callback that e-mails the mentor (their profile e-mail).

    A mentor without an e-mail address is logged and skipped. The SES client and the app URL are
    resolved lazily (``shared.aws.client("sesv2")``, ``settings().app_url``) on first use.
    """

    def notify(mentor_id: str, provider: Provider) -> None:
        mentor = store.get_mentor(mentor_id)
        if mentor is None or not mentor.email:
            logger.warning(
                "reconnect e-mail skipped: mentor has no e-mail address",
                extra={"mentor_id": mentor_id, "provider": Provider(provider).value},
            )
            return
        client = ses_client
        if client is None:
            from shared.aws import client as aws_client

            client = aws_client("sesv2")
        url = app_url
        if url is None:
            from shared.config import settings

            url = settings().app_url
        message_id = send_reconnect_email(mentor.email, provider, ses_client=client, sender=sender, app_url=url)
        logger.info(
            "reconnect e-mail sent",
            extra={"mentor_id": mentor_id, "provider": Provider(provider).value, "message_id": message_id},
        )

    return notify
