"""Each adapter against a real local server: SMTP (STARTTLS and implicit TLS, with login),
the Gmail API's token and send endpoints, a webhook receiver, and SNS through boto3 to a
local SNS endpoint. Secrets never reach a log line or the notification log."""

from __future__ import annotations

import base64
import json
import logging
import ssl
from email import message_from_bytes

import boto3
import pytest
import structlog
from pydantic import SecretStr

from services.shared.schemas import NotificationChannel as C
from services.trading.core.clock import SimulatedClock
from services.trading.notifications.channel import ChannelError
from services.trading.notifications.channel_config import ChannelConfig, build_channels
from services.trading.notifications.formatting import render
from services.trading.notifications.gmail_api import SEND_PATH, GmailApiEmail
from services.trading.notifications.notification_store import PostgresNotificationStore
from services.trading.notifications.rate_limit import RateLimiter
from services.trading.notifications.service import NotificationService
from services.trading.notifications.settings import NotificationSettings
from services.trading.notifications.sms_sns import SnsSms
from services.trading.notifications.smtp_email import SmtpEmail, SmtpSecurity
from services.trading.notifications.webhook import Webhook

from .conftest import FAST, SMTP_PASSWORD, SMTP_USER, breaker_event, free_port

pytestmark = pytest.mark.integration

MESSAGE = render(breaker_event())
WEBHOOK_SECRET = "T000/B000/hook-secret-4c1f9e"
CLIENT_SECRET, REFRESH_TOKEN, ACCESS_TOKEN = (
    "gmail-client-secret-77aa",
    "1//refresh-token-31bd",
    "ya29.access-9f0",
)


def smtp(server, security: SmtpSecurity, password: str = SMTP_PASSWORD) -> SmtpEmail:
    return SmtpEmail(
        host=server.host,
        port=server.port,
        sender="engine@example.com",
        recipients=("owner@example.com", "partner@example.org"),
        security=security,
        username=SMTP_USER,
        password=SecretStr(password),
        timeout_seconds=5,
        ssl_context=ssl.create_default_context(cafile=str(server.ca_file)),
    )


async def test_smtp_starttls_logs_in_and_delivers_the_email(smtp_server) -> None:
    await smtp(smtp_server, SmtpSecurity.STARTTLS).send(MESSAGE)
    (email,) = smtp_server.messages
    assert smtp_server.logins == [SMTP_USER]
    assert email["Subject"] == MESSAGE.subject and email["From"] == "engine@example.com"
    assert email["To"] == "owner@example.com, partner@example.org"
    body = email.get_payload(decode=True).decode()
    assert "3.20%" in body and "3.00%" in body and "2026-03-09 09:30 ET" in body


# aiosmtpd warns that AUTH is allowed without STARTTLS; with implicit TLS that is the point.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_smtp_implicit_tls_delivers_the_email(smtps_server) -> None:
    await smtp(smtps_server, SmtpSecurity.SSL).send(MESSAGE)
    assert len(smtps_server.messages) == 1 and smtps_server.logins == [SMTP_USER]


async def test_smtp_wrong_password_is_a_permanent_failure_without_the_password(smtp_server) -> None:
    with pytest.raises(ChannelError) as error:
        await smtp(smtp_server, SmtpSecurity.STARTTLS, password="wrong-password-123").send(MESSAGE)
    assert (
        error.value.permanent and "535" in str(error.value) and "wrong-password-123" not in str(error.value)
    )
    assert smtp_server.messages == []


async def test_smtp_server_down_is_a_retryable_failure() -> None:
    channel = SmtpEmail(
        host="127.0.0.1",
        port=free_port(),
        sender="e@example.com",
        recipients=("o@example.com",),
        security=SmtpSecurity.NONE,
        timeout_seconds=2,
    )
    with pytest.raises(ChannelError) as error:
        await channel.send(MESSAGE)
    assert not error.value.permanent and "ConnectionRefusedError" in str(error.value)


def gmail(http_server, clock: SimulatedClock) -> GmailApiEmail:
    http_server.responses["/token"] = [
        (200, {"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"})
    ]
    http_server.responses[SEND_PATH] = [(200, {"id": "18c2", "labelIds": ["SENT"]})]
    return GmailApiEmail(
        client_id="client.apps.example",
        client_secret=SecretStr(CLIENT_SECRET),
        refresh_token=SecretStr(REFRESH_TOKEN),
        recipients=("owner@example.com",),
        clock=clock,
        token_url=f"{http_server.url}/token",
        api_base_url=http_server.url,
        timeout_seconds=5,
    )


async def test_gmail_api_refreshes_a_token_once_and_sends_the_raw_email(http_server, clock) -> None:
    channel = gmail(http_server, clock)
    await channel.send(MESSAGE)
    await channel.send(MESSAGE)
    (token_request,) = http_server.to("/token")
    form = dict(pair.split("=", 1) for pair in token_request.body.decode().split("&"))
    assert form["grant_type"] == "refresh_token" and form["client_id"] == "client.apps.example"
    assert form["refresh_token"] == REFRESH_TOKEN.replace("/", "%2F")
    sends = http_server.to(SEND_PATH)
    assert len(sends) == 2 and sends[0].headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    email = message_from_bytes(base64.urlsafe_b64decode(sends[0].json()["raw"]))
    assert email["Subject"] == MESSAGE.subject and email["To"] == "owner@example.com"
    assert "3.20%" in email.get_payload(decode=True).decode()


async def test_gmail_api_fetches_a_new_token_after_expiry_or_a_401(http_server, clock) -> None:
    from datetime import timedelta

    channel = gmail(http_server, clock)
    await channel.send(MESSAGE)
    clock.advance(timedelta(minutes=59))  # within a minute of expiry: refreshed early
    await channel.send(MESSAGE)
    http_server.responses[SEND_PATH] = [
        (401, {"error": {"code": 401, "message": "Invalid Credentials"}}),
        (200, {"id": "x"}),
    ]
    with pytest.raises(ChannelError) as error:
        await channel.send(MESSAGE)
    assert not error.value.permanent
    await channel.send(MESSAGE)
    assert len(http_server.to("/token")) == 3


async def test_gmail_api_revoked_refresh_token_is_permanent(http_server, clock) -> None:
    channel = gmail(http_server, clock)
    http_server.responses["/token"] = [
        (400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
    ]
    with pytest.raises(ChannelError) as error:
        await channel.send(MESSAGE)
    assert error.value.permanent and "invalid_grant" in str(error.value)
    assert REFRESH_TOKEN not in str(error.value) and http_server.to(SEND_PATH) == []


async def test_webhook_posts_text_event_type_and_data(http_server) -> None:
    await Webhook(SecretStr(f"{http_server.url}/services/{WEBHOOK_SECRET}")).send(MESSAGE)
    (request,) = http_server.requests
    body = request.json()
    assert request.path == f"/services/{WEBHOOK_SECRET}"
    assert request.headers["Content-Type"] == "application/json"
    assert body["text"] == MESSAGE.sms and body["event_type"] == "circuit_breaker_triggered"
    assert body["data"]["actual_value"] == "0.032" and body["data"]["trigger_type"] == "daily_loss"


@pytest.mark.parametrize(("status", "permanent"), [(500, False), (429, False), (404, True), (400, True)])
async def test_webhook_error_statuses(http_server, status: int, permanent: bool) -> None:
    http_server.responses[f"/services/{WEBHOOK_SECRET}"] = [(status, {"error": "no"})]
    with pytest.raises(ChannelError) as error:
        await Webhook(SecretStr(f"{http_server.url}/services/{WEBHOOK_SECRET}")).send(MESSAGE)
    assert error.value.permanent is permanent and str(status) in str(error.value)
    assert WEBHOOK_SECRET not in str(error.value)


async def test_sns_sms_to_a_phone_number_through_boto3(sns_server, aws_env) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns.models import sns_backends

    phone = "+15555550142"
    await SnsSms(phone_number=phone, region=sns_server.region, endpoint_url=sns_server.url).send(MESSAGE)
    sent = [
        m for m in sns_backends[DEFAULT_ACCOUNT_ID][sns_server.region].sms_messages.values() if m[0] == phone
    ]
    assert sent == [(phone, MESSAGE.sms)]


async def test_sns_publish_to_a_topic_reaches_its_subscriber(sns_server, aws_env) -> None:
    sns = boto3.client("sns", region_name=sns_server.region, endpoint_url=sns_server.url)
    sqs = boto3.client("sqs", region_name=sns_server.region, endpoint_url=sns_server.url)
    topic = sns.create_topic(Name="stonks-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="owner-phone")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
    )
    await SnsSms(topic_arn=topic, region=sns_server.region, endpoint_url=sns_server.url).send(MESSAGE)
    received = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in received] == [MESSAGE.sms]


async def test_sns_unknown_topic_is_a_permanent_failure(sns_server, aws_env) -> None:
    channel = SnsSms(
        topic_arn="arn:aws:sns:us-east-1:123456789012:nope",
        region=sns_server.region,
        endpoint_url=sns_server.url,
    )
    with pytest.raises(ChannelError) as error:
        await channel.send(MESSAGE)
    assert error.value.permanent and str(error.value).startswith("SNS NotFound")


async def test_every_channel_end_to_end_with_no_secret_in_logs_or_records(
    pool, redis_client, clock, smtp_server, http_server, sns_server, aws_env, caplog
) -> None:
    """Through the service, as the engine will run it, with DEBUG logging of every library."""
    config = ChannelConfig(
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_username=SMTP_USER,
        smtp_password=SMTP_PASSWORD,
        webhook_url=f"{http_server.url}/services/{WEBHOOK_SECRET}",
        sns_region=sns_server.region,
        sns_endpoint_url=sns_server.url,
    )
    owner = NotificationSettings(
        sms_enabled=True,
        sms_phone_number="+15555550177",
        email_enabled=True,
        email_recipients=("owner@example.com",),
        webhook_enabled=True,
    )
    context = ssl.create_default_context(cafile=str(smtp_server.ca_file))

    def channels(settings: NotificationSettings):
        built = build_channels(config, settings, clock)
        built[C.EMAIL]._ssl_context = context  # trust the test server's self-signed certificate
        return built

    service = NotificationService(
        settings=owner,
        channel_factory=channels,
        store=PostgresNotificationStore(pool),
        rate_limiter=RateLimiter(redis_client),
        clock=clock,
        policy=FAST,
    )
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as structured:
        await service.start()
        service.notify(breaker_event())
        await service.drain(timeout=20)
        http_server.responses[f"/services/{WEBHOOK_SECRET}"] = [(500, {})]
        service.notify(breaker_event())  # this webhook call fails: its error is recorded too
        await service.drain(timeout=20)
        await service.stop()

    stored = await pool.fetch("SELECT channel, delivery_status, message, error_message FROM notifications")
    statuses = sorted((r["channel"], r["delivery_status"]) for r in stored)
    assert statuses == [("email", "delivered")] * 2 + [("sms", "delivered")] * 2 + [
        ("webhook", "delivered"),
        ("webhook", "failed"),
    ]
    assert len(smtp_server.messages) == 2
    everything = caplog.text + json.dumps(structured, default=str) + json.dumps([dict(r) for r in stored])
    everything += json.dumps(
        [dict(r) for r in await pool.fetch("SELECT * FROM notification_attempts")], default=str
    )
    for secret in (SMTP_PASSWORD, WEBHOOK_SECRET, "hook-secret"):
        assert secret not in everything
    assert "POST" in caplog.text  # httpx did log its requests, with the URL masked
