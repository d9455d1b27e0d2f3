"""Telegram: each alert as one message to each of the owner's chats, through
python-telegram-bot's `Bot` (issue 17). The same bot answers the owner's commands
(`services/trading/telegram/`); this side only sends.

The token is the credential and sits in every request URL: it is registered for redaction,
and errors keep only their kind and Telegram's own description, which never holds it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import SecretStr
from telegram import Bot
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, TelegramError
from telegram.request import HTTPXRequest

from services.shared.schemas import NotificationChannel
from services.trading.notifications.channel import ChannelError
from services.trading.notifications.formatting import Message
from services.trading.notifications.redaction import register_secret

TELEGRAM_API_URL = "https://api.telegram.org/bot"
MAX_TEXT = 4096  # Telegram's limit for one message


def make_bot(token: SecretStr, base_url: str = TELEGRAM_API_URL, timeout_seconds: float = 10.0) -> Bot:
    """A `Bot` on `base_url` (a local Bot API server, or a fake one in tests)."""
    register_secret(token.get_secret_value())
    request = HTTPXRequest(
        connect_timeout=timeout_seconds, read_timeout=timeout_seconds, write_timeout=timeout_seconds
    )
    return Bot(token.get_secret_value(), base_url=base_url, request=request)


def text(message: Message) -> str:
    """Subject and body, as an email shows them; cut to what one message holds."""
    whole = f"{message.subject}\n\n{message.body}"
    return whole if len(whole) <= MAX_TEXT else whole[: MAX_TEXT - 1] + "…"


class TelegramChannel:
    name = NotificationChannel.TELEGRAM

    def __init__(self, make: Callable[[], Bot], chat_ids: Sequence[int]) -> None:
        self._make = make
        self._chat_ids = tuple(chat_ids)

    async def send(self, message: Message) -> None:
        body = text(message)
        # Every chat is tried; a retry sends to all again (the owner usually has one chat).
        failures: list[ChannelError] = []
        try:
            # A bot per alert: its HTTP client closes with it (channels are rebuilt whenever the
            # owner saves settings), and getMe on opening tells a refused token apart at once.
            async with self._make() as bot:
                for chat_id in self._chat_ids:
                    try:
                        await bot.send_message(chat_id, body)
                    except TelegramError as exc:
                        failures.append(_error(chat_id, exc))
        except TelegramError as exc:
            raise _error(None, exc) from None
        if failures:
            raise ChannelError(
                "; ".join(str(f) for f in failures), permanent=all(f.permanent for f in failures)
            )


def _error(chat_id: int | None, exc: TelegramError) -> ChannelError:
    # Refused token, a chat that blocked the bot or does not exist: a retry cannot help.
    permanent = isinstance(exc, (InvalidToken, Forbidden, BadRequest))
    kind = "unreachable" if isinstance(exc, NetworkError) and not isinstance(exc, BadRequest) else "refused"
    where = f" for chat {chat_id}" if chat_id is not None else ""
    # InvalidToken's own text quotes the token: only its kind is kept.
    said = "" if isinstance(exc, InvalidToken) else f": {exc.message}"
    return ChannelError(f"telegram {kind}{where}: {type(exc).__name__}{said}", permanent=permanent)
