"""Email over SMTP: any mail server, Gmail included with an app password (smtp.gmail.com,
port 587, STARTTLS). Uses the standard library's smtplib in a worker thread, with a socket
timeout so a silent server cannot hold the thread for long.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Sequence
from enum import StrEnum

from pydantic import SecretStr

from services.shared.schemas import NotificationChannel
from services.trading.notifications.channel import ChannelError
from services.trading.notifications.formatting import Message
from services.trading.notifications.mime import build_email
from services.trading.notifications.redaction import register_secret


class SmtpSecurity(StrEnum):
    STARTTLS = "starttls"  # port 587: plain connection upgraded to TLS before login
    SSL = "ssl"  # port 465: TLS from the first byte
    NONE = "none"  # a relay on localhost or a test server only


class SmtpEmail:
    name = NotificationChannel.EMAIL

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        security: SmtpSecurity = SmtpSecurity.STARTTLS,
        username: str | None = None,
        password: SecretStr | None = None,
        timeout_seconds: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not recipients:
            raise ValueError("SmtpEmail needs at least one recipient")
        self._host, self._port = host, port
        self._sender, self._recipients = sender, tuple(recipients)
        self._security = SmtpSecurity(security)
        self._username, self._password = username, password
        self._timeout = timeout_seconds
        # The system's trusted CAs unless a context is given (a private CA, or the tests').
        self._ssl_context = ssl_context or ssl.create_default_context()
        if password is not None:
            register_secret(password.get_secret_value())

    async def send(self, message: Message) -> None:
        email = build_email(message, self._sender, self._recipients)
        await asyncio.to_thread(self._send, email)

    def _connect(self) -> smtplib.SMTP:
        if self._security is SmtpSecurity.SSL:
            return smtplib.SMTP_SSL(self._host, self._port, timeout=self._timeout, context=self._ssl_context)
        return smtplib.SMTP(self._host, self._port, timeout=self._timeout)

    def _send(self, email) -> None:
        try:
            with self._connect() as smtp:
                smtp.ehlo()
                if self._security is SmtpSecurity.STARTTLS:
                    smtp.starttls(context=self._ssl_context)
                    smtp.ehlo()
                if self._username:
                    secret = self._password.get_secret_value() if self._password else ""
                    smtp.login(self._username, secret)
                smtp.send_message(email)
        except smtplib.SMTPAuthenticationError as exc:
            raise ChannelError(f"SMTP login refused ({exc.smtp_code})", permanent=True) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise ChannelError(f"SMTP refused recipients {sorted(exc.recipients)}", permanent=True) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise ChannelError(f"SMTP server lacks a needed extension: {exc}", permanent=True) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise ChannelError(f"SMTP {type(exc).__name__}: {exc}") from None
