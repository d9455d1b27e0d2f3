"""Secrets never reach a log line or the `notifications` table (issue 7).

Adapters register each secret they hold (password, tokens, webhook URL); `redact` masks them
in error texts before they are recorded, and `RedactingFilter` masks them in third-party log
records (httpx logs every request URL at INFO, and a Slack or Discord webhook URL is itself
the credential).
"""

from __future__ import annotations

import logging
import threading

MASK = "[redacted]"
# Shorter values would mask ordinary words; real secrets here are long random strings.
MIN_SECRET_LENGTH = 6
# python-telegram-bot logs its API URL, token included, at DEBUG ("telegram.Bot").
THIRD_PARTY_LOGGERS = ("httpx", "httpcore", "botocore", "urllib3", "smtplib", "telegram")

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask `value` from now on in every redacted text and filtered log record."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)
    _install_filters()


def redact(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed third-party record: leave it to logging's own handling
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FILTER = RedactingFilter()


def _install_filters() -> None:
    # A logger's filters see its own records only, not its children's ("telegram.Bot",
    # "httpcore.http11"): every one of them that exists by now is filtered too.
    children = [
        name
        for name in list(logging.Logger.manager.loggerDict)
        if any(name.startswith(f"{parent}.") for parent in THIRD_PARTY_LOGGERS)
    ]
    for name in (*THIRD_PARTY_LOGGERS, *children):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
