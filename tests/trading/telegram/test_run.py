"""`stonks run` with a Telegram token configured answers the owner's chat (issue 17), and its
log at DEBUG never holds the token; a refused token leaves the engine running without it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from services.shared.embedded import ServerUrls
from services.shared.ports import free_port
from tests.trading.telegram.fake_bot_api import TOKEN, fake_bot_api

pytestmark = pytest.mark.integration

OWNER = 4242


async def _run(
    tmp_path: Path, database_url: str, redis_url: str, **telegram: str
) -> tuple[asyncio.subprocess.Process, Path]:
    log = tmp_path / "run.log"
    env = {
        **os.environ,
        "STONKS_DATABASE_URL": database_url,
        "STONKS_REDIS_URL": redis_url,
        "STONKS_DATA_DIR": str(tmp_path),
        "STONKS_API_PORT": str(free_port()),
        "STONKS_LOG_LEVEL": "DEBUG",
        "COLUMNS": "200",
        **telegram,
    }
    with log.open("w") as out:
        run = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.trading", "run", "--external-broker",
            env=env, stdout=out, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    return run, log


async def _stop(run: asyncio.subprocess.Process) -> None:
    if run.returncode is None:
        run.send_signal(signal.SIGINT)
        await asyncio.wait_for(run.wait(), 60)


async def test_run_answers_the_owner_on_telegram(
    tmp_path: Path, server_urls: ServerUrls, database_url: str, redis_url: str
) -> None:
    async with fake_bot_api() as fake:
        run, log = await _run(
            tmp_path,
            database_url,
            redis_url,
            STONKS_TELEGRAM_BOT_TOKEN=TOKEN,
            STONKS_TELEGRAM_CHAT_IDS=str(OWNER),
            STONKS_TELEGRAM_API_URL=fake.base_url,
        )
        try:
            await fake.wait(lambda: any(c.method == "setMyCommands" for c in fake.calls), timeout=90)
            await fake.say(OWNER, "/status")
            answer = await fake.reply(OWNER, timeout=30)
        finally:
            await _stop(run)
    assert answer.params["text"].startswith("Engine: ")
    text = log.read_text()
    assert "telegram control started" in text and "Set Bot API URL" in text  # DEBUG logs were on
    assert TOKEN not in text and TOKEN.split(":")[1] not in text


async def test_a_refused_token_leaves_the_engine_running(
    tmp_path: Path, server_urls: ServerUrls, database_url: str, redis_url: str
) -> None:
    async with fake_bot_api() as fake:
        run, log = await _run(
            tmp_path,
            database_url,
            redis_url,
            STONKS_TELEGRAM_BOT_TOKEN="777:refused-by-the-server",
            STONKS_TELEGRAM_API_URL=fake.base_url,
        )
        try:
            for _ in range(900):
                if "telegram control could not start" in log.read_text() or run.returncode is not None:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)
            assert run.returncode is None, log.read_text()
        finally:
            await _stop(run)
    text = log.read_text()
    assert "telegram control could not start" in text and "refused-by-the-server" not in text
