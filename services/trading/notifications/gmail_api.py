"""Email through the Gmail API (seed task 16.1): `users.messages.send` with OAuth2.

An access token is obtained from the refresh token, client id and client secret at the
token URL and kept until a minute before it expires (by the injected clock); a 401 drops it
so the next attempt fetches a fresh one. Plain httpx, no Google client library: two POSTs
do not justify its weight. Both URLs are settings so tests can point them at a local server.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime, timedelta

import httpx
from pydantic import SecretStr

from services.shared.schemas import NotificationChannel
from services.trading.core.clock import Clock
from services.trading.notifications.channel import ChannelError
from services.trading.notifications.formatting import Message
from services.trading.notifications.mime import build_email
from services.trading.notifications.redaction import register_secret

GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
GMAIL_API_BASE_URL = "https://gmail.googleapis.com"
SEND_PATH = "/gmail/v1/users/me/messages/send"
TOKEN_SAFETY_MARGIN = timedelta(seconds=60)
# Statuses that mean the request itself is wrong: retrying sends the same wrong request.
PERMANENT_STATUSES = frozenset({400, 403, 404})


class GmailApiEmail:
    name = NotificationChannel.EMAIL

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: SecretStr,
        refresh_token: SecretStr,
        recipients: Sequence[str],
        clock: Clock,
        sender: str | None = None,
        token_url: str = GOOGLE_TOKEN_URL,
        api_base_url: str = GMAIL_API_BASE_URL,
        timeout_seconds: float = 10.0,
    ) -> None:
        if not recipients:
            raise ValueError("GmailApiEmail needs at least one recipient")
        self._client_id = client_id
        self._client_secret, self._refresh_token = client_secret, refresh_token
        self._recipients, self._sender = tuple(recipients), sender
        self._clock = clock
        self._token_url = token_url
        self._send_url = api_base_url.rstrip("/") + SEND_PATH
        self._timeout = timeout_seconds
        self._access_token: str | None = None
        self._expires_at: datetime | None = None
        register_secret(client_secret.get_secret_value())
        register_secret(refresh_token.get_secret_value())

    async def send(self, message: Message) -> None:
        raw = base64.urlsafe_b64encode(
            build_email(message, self._sender, self._recipients).as_bytes()
        ).decode()
        async with httpx.AsyncClient(timeout=self._timeout) as http:
            token = await self._token(http)
            try:
                response = await http.post(
                    self._send_url, json={"raw": raw}, headers={"Authorization": f"Bearer {token}"}
                )
            except httpx.HTTPError as exc:
                raise ChannelError(f"Gmail API unreachable: {type(exc).__name__}") from None
        if response.status_code == 401:
            self._access_token = None
            raise ChannelError("Gmail API refused the access token (401); a new one is fetched next time")
        if response.status_code >= 300:
            raise ChannelError(
                f"Gmail API answered {response.status_code}: {_error_text(response)}",
                permanent=response.status_code in PERMANENT_STATUSES,
            )

    async def _token(self, http: httpx.AsyncClient) -> str:
        now = self._clock.now()
        if self._access_token and self._expires_at and now < self._expires_at:
            return self._access_token
        form = {
            "grant_type": "refresh_token",
            "client_id": self._client_id,
            "client_secret": self._client_secret.get_secret_value(),
            "refresh_token": self._refresh_token.get_secret_value(),
        }
        try:
            response = await http.post(self._token_url, data=form)
        except httpx.HTTPError as exc:
            raise ChannelError(f"Gmail token endpoint unreachable: {type(exc).__name__}") from None
        if response.status_code != 200:
            # invalid_grant / invalid_client: the refresh token or client was revoked or is wrong.
            raise ChannelError(
                f"Gmail token refused ({response.status_code}): {_error_text(response)}",
                permanent=response.status_code in (400, 401),
            )
        try:
            body = response.json()
            token, lifetime = str(body["access_token"]), int(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise ChannelError("Gmail token endpoint answered without an access_token") from None
        register_secret(token)
        self._access_token = token
        self._expires_at = now + timedelta(seconds=lifetime) - TOKEN_SAFETY_MARGIN
        return token


def _error_text(response: httpx.Response) -> str:
    """Google's short error code and description, not the whole body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):  # Gmail API: {"error": {"code", "message", "status"}}
        return str(error.get("message", ""))[:200]
    description = body.get("error_description", "") if isinstance(body, dict) else ""
    return f"{error} {description}".strip()[:200]
