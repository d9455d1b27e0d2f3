"""The API tests' real app, database and traded history, for the bot that reads the same."""

from tests.trading.api.conftest import api, pool, traded  # noqa: F401
