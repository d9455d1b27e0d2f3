"""What every delivery channel is to the service: a name and one `send` that raises on failure.

Adapters (SNS, Gmail API, SMTP, webhook) sit behind this Protocol (STYLE principle 5), so the
service's retries, timeouts and records are the same for all of them, and tests can stand a
failing or hanging channel in their place.
"""

from __future__ import annotations

from typing import Protocol

from services.shared.schemas import NotificationChannel
from services.trading.notifications.formatting import Message


class ChannelError(Exception):
    """A delivery failed. The text is recorded and logged, so it must never hold a secret.

    `permanent` says a retry cannot help (refused credentials, bad recipient, unset channel):
    the service then stops after the first attempt instead of burning the retries."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


class Channel(Protocol):
    name: NotificationChannel

    async def send(self, message: Message) -> None:
        """Deliver `message` or raise (preferably `ChannelError`)."""
        ...


class UnconfiguredChannel:
    """Stands for a channel the owner enabled without its connection settings, so each alert
    on it is recorded as failed with the setting to add, instead of vanishing silently."""

    def __init__(self, name: NotificationChannel, reason: str) -> None:
        self.name = name
        self.reason = reason

    async def send(self, message: Message) -> None:
        raise ChannelError(self.reason, permanent=True)
