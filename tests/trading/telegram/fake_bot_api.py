"""A local Telegram Bot API server for the tests: it speaks the methods python-telegram-bot
calls (getMe, deleteWebhook, getUpdates with long polling, sendMessage, answerCallbackQuery,
editMessageText, setMyCommands) over real HTTP on 127.0.0.1, as the library sends them: a
POST to `/bot<token>/<method>` with form fields, each a JSON value (strings as they are).

The test plays the people: `say(chat, "/pause")` queues a message from that chat,
`tap(chat, message, data)` queues the tap of an inline button; what the bot sent is kept in
`sent` (every call, in order) and waited for with `reply(chat)`."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.trading.api.served import uvicorn_serving

TOKEN = "123456:test-token-of-the-fake-bot-api"
BOT = {"id": 123456, "is_bot": True, "first_name": "stonks", "username": "stonks_test_bot"}
TEXT_FIELDS = {"text", "callback_query_id", "parse_mode"}  # sent raw, not JSON-encoded


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    result: Any = None


@dataclass
class FakeBotApi:
    base_url: str = ""
    calls: list[Call] = field(default_factory=list)
    _updates: list[dict[str, Any]] = field(default_factory=list)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _message_ids: itertools.count = field(default_factory=lambda: itertools.count(1000))
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)  # every message, by id

    # -- the people ---------------------------------------------------------------------------

    async def say(self, chat_id: int, text: str) -> None:
        message = self._message(chat_id, text, from_user=chat_id)
        entities = (
            [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
            if text.startswith("/")
            else []
        )
        await self._push({"message": {**message, "entities": entities}})

    async def tap(self, chat_id: int, message: dict[str, Any], data: str) -> str:
        """Tap the inline button carrying `data` under `message`, as the user `chat_id`."""
        query_id = f"q{next(self._ids)}"
        await self._push(
            {
                "callback_query": {
                    "id": query_id,
                    "from": _user(chat_id),
                    "message": message,
                    "chat_instance": str(chat_id),
                    "data": data,
                }
            }
        )
        return query_id

    async def reply(
        self, chat_id: int, method: str = "sendMessage", *, after: int = 0, timeout: float = 15
    ) -> Call:
        """The first `method` call to `chat_id` from index `after` on, when it comes."""
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: self._find(chat_id, method, after) is not None), timeout
            )
            return self._find(chat_id, method, after)  # type: ignore[return-value]

    async def wait(self, condition: Callable[[], bool], timeout: float = 15) -> None:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(condition), timeout)

    def _find(self, chat_id: int, method: str, after: int) -> Call | None:
        for call in self.calls[after:]:
            if call.method == method and call.params.get("chat_id") == chat_id:
                return call
        return None

    def answers(self, query_id: str) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.method == "answerCallbackQuery" and c.params["callback_query_id"] == query_id
        ]

    # -- the server -----------------------------------------------------------------------------

    async def _push(self, update: dict[str, Any]) -> None:
        async with self._arrived:
            self._updates.append({"update_id": next(self._ids), **update})
            self._arrived.notify_all()

    def _message(
        self, chat_id: int, text: str, *, from_user: int | None = None, **extra: Any
    ) -> dict[str, Any]:
        message = {
            "message_id": next(self._message_ids),
            "date": 1_700_000_000,
            "chat": {"id": chat_id, "type": "private"},
            "from": _user(from_user) if from_user is not None else BOT,
            "text": text,
            **extra,
        }
        self.messages[message["message_id"]] = message
        return message

    async def handle(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getUpdates":
            return await self._get_updates(int(params.get("offset", 0)), float(params.get("timeout", 0)))
        call = Call(method, params, self._result(method, params))
        async with self._arrived:
            self.calls.append(call)
            self._arrived.notify_all()
        return call.result

    def _result(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getMe":
            return BOT
        if method in ("deleteWebhook", "setMyCommands", "answerCallbackQuery"):
            return True
        if method == "sendMessage":
            extra = {"reply_markup": params["reply_markup"]} if "reply_markup" in params else {}
            return self._message(params["chat_id"], params["text"], **extra)
        if method == "editMessageText":
            message = self.messages[params["message_id"]]
            message["text"] = params["text"]
            message.pop("reply_markup", None)
            if "reply_markup" in params:
                message["reply_markup"] = params["reply_markup"]
            return message
        raise LookupError(method)

    async def _get_updates(self, offset: int, timeout: float) -> list[dict[str, Any]]:
        async with self._arrived:
            # Confirmed: everything before `offset` was handled (the Bot API's own rule).
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            with suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait_for(lambda: bool(self._updates)), min(timeout, 1.0))
            return list(self._updates)


def _user(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}


def _decode(name: str, value: str) -> Any:
    if name in TEXT_FIELDS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def app_for(fake: FakeBotApi) -> FastAPI:
    app = FastAPI()

    @app.post("/bot{token}/{method}")
    async def method(token: str, method: str, request: Request) -> JSONResponse:
        if token != TOKEN:
            return JSONResponse({"ok": False, "error_code": 401, "description": "Unauthorized"}, 401)
        # python-telegram-bot sends form fields, url-encoded (no files in these methods).
        fields = parse_qsl((await request.body()).decode(), keep_blank_values=True)
        params = {name: _decode(name, value) for name, value in fields}
        try:
            result = await fake.handle(method, params)
        except LookupError:
            return JSONResponse({"ok": False, "error_code": 404, "description": "Not Found"}, 404)
        return JSONResponse({"ok": True, "result": result})

    return app


@asynccontextmanager
async def fake_bot_api() -> AsyncIterator[FakeBotApi]:
    fake = FakeBotApi()
    async with uvicorn_serving(app_for(fake)) as port:
        fake.base_url = f"http://127.0.0.1:{port}/bot"
        yield fake
