"""A generic webhook: one JSON POST per alert (Slack, Discord, ntfy, Home Assistant, n8n...).

Body: `{"text", "event_type", "subject", "occurred_at", "data"}`. `text` is the short
phone-sized line, which is what Slack's incoming webhooks display (Discord accepts the same
body at its webhook URL + `/slack`). The URL usually is the credential, so it is masked in
errors and in httpx's request log.
"""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from services.shared.schemas import NotificationChannel
from services.trading.notifications.channel import ChannelError
from services.trading.notifications.formatting import Message
from services.trading.notifications.redaction import register_secret

# 4xx other than these means the receiver refuses this request as such; retrying cannot help.
RETRYABLE_CLIENT_STATUSES = frozenset({408, 409, 425, 429})


def payload(message: Message) -> dict:
    return {
        "text": message.sms,
        "event_type": str(message.event_type),
        "subject": message.subject,
        "occurred_at": message.occurred_at.isoformat(),
        "data": dict(message.data),
    }


class Webhook:
    name = NotificationChannel.WEBHOOK

    def __init__(self, url: SecretStr, *, timeout_seconds: float = 10.0) -> None:
        self._url = url
        self._timeout = timeout_seconds
        register_secret(url.get_secret_value())

    async def send(self, message: Message) -> None:
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as http:
                response = await http.post(self._url.get_secret_value(), json=payload(message))
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            # httpx's own message names the URL: only the error's kind is kept.
            raise ChannelError(f"webhook unreachable: {type(exc).__name__}") from None
        status = response.status_code
        if status >= 300:
            permanent = 400 <= status < 500 and status not in RETRYABLE_CLIENT_STATUSES
            raise ChannelError(f"webhook answered HTTP {status}", permanent=permanent)
