"""Deciding which servers this process talks to: the ones the environment names, or the
private embedded ones (docs/contracts.md section 2); and which key signs its order jobs."""

from __future__ import annotations

import structlog

from services.shared.config import AppConfig, ConfigError
from services.shared.embedded import EmbeddedServers, ServerUrls
from services.shared.order_signing import MIN_KEY_LENGTH, OrderSigner
from services.shared.secret_files import kept_secret

log = structlog.get_logger(__name__)
ORDER_SIGNING_KEY_FILE = "order-signing-key"


def resolve_server_urls(config: AppConfig) -> ServerUrls:
    """URLs from the environment win; any that is missing is served by a private server."""
    if config.database_url and config.redis_url:
        return ServerUrls(config.database_url, config.redis_url)
    embedded = EmbeddedServers(config.data_dir).ensure_running()
    urls = ServerUrls(config.database_url or embedded.database_url, config.redis_url or embedded.redis_url)
    log.info(
        "servers ready",
        database=redacted(urls.database_url),
        redis=redacted(urls.redis_url),
        embedded_dir=str(config.data_dir / "servers"),
    )
    return urls


def redacted(url: str) -> str:
    """Hide a password in a URL before it reaches a log line."""
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def order_signer(config: AppConfig) -> OrderSigner:
    """The key the engine signs order jobs with and the paper broker checks them with:
    `STONKS_ORDER_SIGNING_KEY` (a broker in another process needs the same one), else the key
    generated on first start and kept in `<STONKS_DATA_DIR>/order-signing-key` (mode 0600),
    so jobs still on the queue across a restart keep their valid signatures."""
    if config.order_signing_key is not None:
        secret = config.order_signing_key.get_secret_value().strip()
        if len(secret) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"STONKS_ORDER_SIGNING_KEY must be at least {MIN_KEY_LENGTH} characters "
                "(python -c 'import secrets; print(secrets.token_urlsafe(32))' makes one)"
            )
        return OrderSigner.from_secret(secret)
    kept = kept_secret(
        config.data_dir / ORDER_SIGNING_KEY_FILE, "order-signing key", min_length=MIN_KEY_LENGTH
    )
    return OrderSigner.from_secret(kept.value)
