"""Deciding which servers this process talks to: the ones the environment names, or the
private embedded ones (SPEC section 2)."""

from __future__ import annotations

import structlog

from services.shared.config import AppConfig
from services.shared.embedded import EmbeddedServers, ServerUrls

log = structlog.get_logger(__name__)


def resolve_server_urls(config: AppConfig) -> ServerUrls:
    """URLs from the environment win; any that is missing is served by a private server."""
    if config.database_url and config.redis_url:
        return ServerUrls(config.database_url, config.redis_url)
    embedded = EmbeddedServers(config.data_dir).ensure_running()
    urls = ServerUrls(config.database_url or embedded.database_url, config.redis_url or embedded.redis_url)
    log.info("servers ready", database=redacted(urls.database_url), redis=redacted(urls.redis_url),
             embedded_dir=str(config.data_dir / "servers"))
    return urls


def redacted(url: str) -> str:
    """Hide a password in a URL before it reaches a log line."""
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
