"""The HTTP service's own deployment settings (`STONKS_API_*`), beside `AppConfig`'s
`STONKS_API_TOKEN`, `STONKS_API_HOST` and `STONKS_API_PORT`.

A bad value stops start-up with one line naming the variable, like every other setting.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.shared.config import ConfigError


class ReadAccess(StrEnum):
    """Who may call the read endpoints without the token."""

    AUTO = "auto"  # open to callers on loopback while the server listens only there; else token
    ALWAYS = "always"  # reads need the token too
    NEVER = "never"  # reads are open to anyone who can reach the server


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STONKS_API_", frozen=True, extra="ignore")

    # The lifespan starts the engine loop in this process (seed task 20.1). Off for a process
    # that only serves the API beside an engine running elsewhere.
    run_engine: bool = True
    protect_reads: ReadAccess = ReadAccess.AUTO
    # Where a generated token is kept (mode 0600); default `<STONKS_DATA_DIR>/api-token`.
    token_file: Path | None = None
    # Backtests run in this process, in a worker thread each: more at once would slow the loop.
    max_backtests: int = Field(2, ge=1, le=16)


def load_api_settings() -> ApiSettings:
    try:
        return ApiSettings()
    except ValidationError as exc:
        problems = [
            f"STONKS_API_{'.'.join(map(str, e['loc'])).upper()}={e.get('input')!r}: {e['msg']}"
            for e in exc.errors()
        ]
        raise ConfigError("invalid settings: " + "; ".join(problems)) from None
