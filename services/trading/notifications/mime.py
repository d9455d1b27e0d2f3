"""The email both email adapters send (SMTP and Gmail API): plain text, UTF-8."""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from services.trading.notifications.formatting import Message


def build_email(message: Message, sender: str | None, recipients: Sequence[str]) -> EmailMessage:
    """`sender` None leaves From to the provider (the Gmail API fills in the account)."""
    email = EmailMessage()
    email["Subject"] = message.subject
    if sender:
        email["From"] = sender
    email["To"] = ", ".join(recipients)
    email["Date"] = format_datetime(message.occurred_at)
    # A domain given explicitly: without one, make_msgid asks DNS for this host's name.
    domain = sender.rsplit("@", 1)[-1] if sender and "@" in sender else "stonks.invalid"
    email["Message-ID"] = make_msgid("stonks", domain=domain)
    email.set_content(message.body)
    return email
