"""Which channels an event goes to, and if none, why (seed tasks 16.1 and 25.5), pure.

An event goes to every enabled channel when its type is switched on. A closed trade is
"large" when its realized P&L, gain or loss, is at least `large_trade_pnl_threshold` dollars
in absolute value; a trade whose P&L cannot be read is sent anyway, since silence is the
worse failure for an alert.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.shared.schemas import NotificationChannel, NotificationEventType
from services.trading.notifications.events import NotificationEvent
from services.trading.notifications.formatting import money, to_decimal
from services.trading.notifications.settings import NotificationSettings


@dataclass(frozen=True, slots=True)
class Route:
    channels: tuple[NotificationChannel, ...]
    reason: str


def route(event: NotificationEvent, settings: NotificationSettings) -> Route:
    kind = event.event_type
    if kind not in settings.notification_event_types:
        return Route((), f"{kind} notifications are switched off")
    if kind is NotificationEventType.LARGE_TRADE_PNL:
        pnl = to_decimal(event.data.get("realized_pnl"))
        if pnl is not None and abs(pnl) < settings.large_trade_pnl_threshold:
            return Route(
                (),
                f"trade P&L {money(pnl, signed=True)} is under the "
                f"{money(settings.large_trade_pnl_threshold)} threshold",
            )
    channels = settings.enabled_channels()
    if not channels:
        return Route((), "no notification channel is enabled")
    return Route(channels, f"{kind} to {', '.join(map(str, channels))}")
