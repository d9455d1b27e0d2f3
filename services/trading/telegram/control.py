"""The Telegram bot that takes the owner's commands (issue 17), on python-telegram-bot's
`Application`, polling getUpdates beside the engine in `stonks run`.

Who: only the chats in `STONKS_TELEGRAM_CHAT_IDS` may command. Anyone else is answered
"not allowed" with their chat id (so the owner can find theirs when setting up) and nothing
else; the attempt is audited.

Audit: every command and every tap, the owner's or a stranger's, is a row of
`trading_config_audit` whose source names the chat, as an API call's names its client:
`telegram: /pause (chat 42)`. A change it makes is then recorded exactly as the API records it
(the configuration before and after, the breaker event with its reason), with that source.

Confirmation: /pause, /resume, /halt, /clear and /tier change nothing until the owner taps
"Confirm" under the bot's question (an inline keyboard; the tap is answered with
answerCallbackQuery and the question edited into the outcome). A question expires after
`CONFIRM_WITHIN`, is answered once, and only in the chat it was asked in.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from pydantic import SecretStr, ValidationError
from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from services.shared.schemas import NotificationEventType, RiskTierName
from services.trading.api import commands, views
from services.trading.api.routes.breaker import HaltRequest
from services.trading.api.runtime import Runtime
from services.trading.core import circuit_breaker
from services.trading.live import breaker_cache, owner_reports, read_model
from services.trading.notifications.channel_config import ChannelConfig
from services.trading.notifications.formatting import render
from services.trading.notifications.redaction import redact, register_secret
from services.trading.notifications.schedule import ScheduledReport, daily_period
from services.trading.notifications.telegram import TELEGRAM_API_URL
from services.trading.telegram import replies

log = structlog.get_logger(__name__)

CONFIRM_WITHIN = timedelta(minutes=5)
LAST_TRADES = 10
CHANGES = ("pause", "resume", "halt", "clear", "tier")


@dataclass(frozen=True, slots=True)
class Pending:
    """A change asked for and not yet confirmed."""

    chat_id: int
    command: str  # as typed, for the audit and the question
    asked_at: datetime
    apply: Callable[[str], Awaitable[str]]  # source -> the outcome, in words


class TelegramControl:
    def __init__(
        self,
        runtime: Runtime,
        *,
        token: SecretStr,
        owner_chat_ids: Sequence[int],
        base_url: str = TELEGRAM_API_URL,
        poll_timeout: float = 10.0,
    ) -> None:
        register_secret(token.get_secret_value())
        self.runtime = runtime
        self.owners = frozenset(owner_chat_ids)
        self.poll_timeout = poll_timeout
        self.pending: dict[str, Pending] = {}
        self.application: Application = (
            ApplicationBuilder()
            .token(token.get_secret_value())
            .base_url(base_url)
            # A long poll is held open `poll_timeout` seconds by the server: read a little longer.
            .get_updates_read_timeout(poll_timeout + 10)
            .build()
        )
        # Every command, known or not, so that each is audited (an unknown one is answered with /help).
        self.application.add_handler(MessageHandler(filters.COMMAND, self._on_command))
        self.application.add_handler(CallbackQueryHandler(self._on_tap))
        self.application.add_error_handler(self._on_error)

    # -- life ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """getMe (the token is checked here), the command menu, then polling in the background."""
        await self.application.initialize()
        await self.application.bot.set_my_commands(
            [BotCommand(name, what) for name, what in replies.COMMANDS.items()]
        )
        await self.application.start()
        await self.application.updater.start_polling(  # type: ignore[union-attr]
            timeout=int(self.poll_timeout), allowed_updates=["message", "callback_query"]
        )
        log.info("telegram control started", owner_chats=len(self.owners))

    async def stop(self) -> None:
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()

    # -- commands -----------------------------------------------------------------------------

    async def _on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, chat = update.effective_message, update.effective_chat
        if message is None or chat is None or not message.text:
            return
        typed = " ".join(message.text.split())[:600]  # room for a 500-character halt reason
        name = typed.split()[0][1:].split("@")[0].lower()
        argument = typed.partition(" ")[2]
        if chat.id not in self.owners:
            await self._audit(f"telegram: {typed} refused: chat {chat.id} is not the owner's")
            await message.reply_text(
                f"This chat ({chat.id}) may not command the engine. "
                "The owner lists the chats that may in STONKS_TELEGRAM_CHAT_IDS."
            )
            return
        await self._audit(f"telegram: {typed} (chat {chat.id})")
        if name in CHANGES:
            await self._ask(message, chat.id, name, argument, typed)
        else:
            try:
                answer = await self._read(name)
            except Exception as exc:  # the owner is told; the bot goes on
                log.exception("telegram read failed", command=name)
                answer = f"Could not read that: {type(exc).__name__}: {exc}"
            await message.reply_text(answer)

    async def _read(self, name: str) -> str:
        runtime = self.runtime
        if name == "status":
            return replies.status(await views.status(runtime, None))
        if name == "positions":
            return replies.positions(await views.positions(runtime))
        if name == "trades":
            rows = await read_model.closed_trades(
                runtime.pool, ticker=None, since=None, until=None, limit=LAST_TRADES, offset=0
            )
            return replies.trades([views.trade(r) for r in rows.items], rows.total)
        if name == "daily":
            return await self._daily()
        return replies.HELP

    async def _daily(self) -> str:
        """The daily summary of the last session closed (today's once it has closed), as the
        16:30 notification words it."""
        now = self.runtime.clock.now()
        last = await self.runtime.pool.fetchval("SELECT max(snapshot_date) FROM portfolio_snapshots")
        if last is None:
            return "No session has closed yet: the daily summary is written from the end-of-day snapshot."
        report = ScheduledReport(NotificationEventType.DAILY_SUMMARY, daily_period(last), now, last, last)
        return render(await owner_reports.daily_summary(self.runtime.pool, report, now)).body

    async def _ask(self, message: Message, chat_id: int, name: str, argument: str, typed: str) -> None:
        question, apply = self._change(name, argument)
        if apply is None:
            await message.reply_text(question)  # why it cannot be asked; nothing pending
            return
        now = self.runtime.clock.now()
        # Questions never answered are forgotten once they could no longer be confirmed.
        for stale in [n for n, p in self.pending.items() if now - p.asked_at > CONFIRM_WITHIN]:
            del self.pending[stale]
        nonce = secrets.token_urlsafe(9)
        self.pending[nonce] = Pending(chat_id, typed, now, apply)
        keyboard = InlineKeyboardMarkup(
            [[InlineKeyboardButton("Confirm", callback_data=f"yes:{nonce}"),
              InlineKeyboardButton("Cancel", callback_data=f"no:{nonce}")]]
        )  # fmt: skip
        await message.reply_text(question, reply_markup=keyboard)

    def _change(self, name: str, argument: str) -> tuple[str, Callable[[str], Awaitable[str]] | None]:
        """The question to confirm and what a confirmation does; or why it cannot be asked."""
        if name in ("pause", "resume"):
            paused = name == "pause"
            question = (
                "Pause trading? No new entries; open positions stay protected by their stops."
                if paused
                else "Resume trading? New entries are allowed again (if the engine is enabled)."
            )
            return question, lambda source: self._switch(paused, source)
        if name == "halt":
            try:
                reason = HaltRequest(reason=argument).reason.strip()
            except ValidationError:
                return "Say why: /halt <reason> (printable text, up to 500 characters).", None
            question = f"Halt all trading now? Every new entry is refused until /clear. Reason: {reason}"
            return question, lambda source: self._halt(reason, source)
        if name == "clear":
            return "Clear your halt? (A daily-loss or volatility halt in force stays.)", self._clear
        try:
            tier = RiskTierName(argument.strip().lower())
        except ValueError:
            return f"Which tier? /tier {'|'.join(RiskTierName)}", None
        return f"Set the risk tier to {tier}?", lambda source: self._tier(tier, source)

    # -- the changes, as the API makes them -----------------------------------------------------

    async def _switch(self, paused: bool, source: str) -> str:
        previous, new = await commands.apply_config_change(self.runtime.store, {"paused": paused}, source)
        if previous == new:
            return "Already paused: nothing changed." if paused else "Not paused: nothing changed."
        return "Paused: no new entries." if paused else "Resumed: new entries allowed."

    async def _halt(self, reason: str, source: str) -> str:
        now = self.runtime.clock.now()
        event = circuit_breaker.manual_halt(f"{reason} ({source})", now)
        changed = await self.runtime.store.trip_manual_breaker(event)
        await self._publish_breaker()
        return (
            "Halted: every new entry is refused until /clear."
            if changed
            else "Already halted: nothing changed."
        )

    async def _clear(self, source: str) -> str:
        changed = await self.runtime.store.clear_manual_breaker(self.runtime.clock.now())
        await self._publish_breaker()
        return "Your halt is cleared." if changed else "No halt of yours to clear: nothing changed."

    async def _tier(self, tier: RiskTierName, source: str) -> str:
        previous, new = await commands.apply_config_change(
            self.runtime.store, {"risk_tier": tier.value}, source
        )
        commands.announce_tier_change(self.runtime.notifier, previous, new, source, self.runtime.clock.now())
        if previous.get("risk_tier") == new.get("risk_tier"):
            return f"The tier is already {tier}: nothing changed."
        return f"Risk tier: {previous.get('risk_tier')} → {tier}."

    async def _publish_breaker(self) -> None:
        # The Redis mirror follows at once, as after the API's halt.
        now = self.runtime.clock.now()
        await breaker_cache.publish(self.runtime.redis, await self.runtime.store.breaker_state(), now)

    # -- taps -----------------------------------------------------------------------------------

    async def _on_tap(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        chat_id = query.message.chat.id if query.message is not None else query.from_user.id
        answer, _, nonce = (query.data or "").partition(":")
        pending = self.pending.get(nonce)
        if chat_id not in self.owners or pending is None or pending.chat_id != chat_id:
            await self._audit(f"telegram: tap {answer!r} refused (chat {chat_id})")
            await query.answer("Not allowed here, or no longer asked.", show_alert=True)
            return
        del self.pending[nonce]  # answered once, whatever the answer
        if self.runtime.clock.now() - pending.asked_at > CONFIRM_WITHIN:
            await self._audit(f"telegram: {pending.command} expired (chat {chat_id})")
            await query.answer("Expired: send the command again.")
            await query.edit_message_text(f"{pending.command}: expired, nothing changed.")
            return
        if answer != "yes":
            await self._audit(f"telegram: {pending.command} cancelled (chat {chat_id})")
            await query.answer("Cancelled.")
            await query.edit_message_text(f"{pending.command}: cancelled, nothing changed.")
            return
        source = f"telegram: {pending.command} confirmed (chat {chat_id})"
        await self._audit(source)
        try:
            outcome = await pending.apply(source)
        except Exception as exc:  # the owner is told; the loop goes on
            log.exception("telegram command failed", command=pending.command)
            outcome = f"Failed, nothing changed: {exc}"
        await query.answer(outcome[:200])
        await query.edit_message_text(f"{pending.command}: {outcome}")

    async def _audit(self, source: str) -> None:
        await self.runtime.store.record_command(source)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram update failed", error=repr(context.error))


async def start_if_configured(runtime: Runtime, config: ChannelConfig) -> TelegramControl | None:
    """The bot, started, when `STONKS_TELEGRAM_BOT_TOKEN` is set; else None. A bot that cannot
    start (token refused, Telegram unreachable) is logged and left out: the engine runs on."""
    if config.telegram_bot_token is None:
        return None
    if not config.telegram_chat_ids:
        # Started anyway: the owner's first message is answered with the chat id to list.
        log.warning(
            "STONKS_TELEGRAM_CHAT_IDS is empty: the bot answers every chat with its id and obeys none"
        )
    control = TelegramControl(
        runtime,
        token=config.telegram_bot_token,
        owner_chat_ids=config.telegram_chat_ids,
        base_url=config.telegram_api_url,
    )
    try:
        await control.start()
    except TelegramError as exc:  # refused token, unreachable: the engine runs on without the phone
        log.error("telegram control could not start", error=f"{type(exc).__name__}: {redact(str(exc))}")
        with contextlib.suppress(TelegramError, RuntimeError):
            await control.stop()
        return None
    return control
