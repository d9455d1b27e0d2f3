"""SMS through AWS SNS (seed task 16.1): `Publish` to a phone number or to a topic.

boto3 blocks, so each publish runs in a worker thread; botocore's own retries are off (the
service retries with backoff and records each try) and its timeouts bound a hung call.
Credentials follow boto3's standard chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
AWS_PROFILE, a role): this module never sees them. `endpoint_url` points at another
SNS-compatible endpoint (a local server in the tests).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from services.shared.schemas import NotificationChannel
from services.trading.notifications.channel import ChannelError
from services.trading.notifications.formatting import Message

# Alerts are time-critical: "Transactional" SMS are routed for reliability, not price.
SMS_TYPE = "Transactional"
# SNS codes for requests that will fail the same way however often they are retried.
PERMANENT_CODES = frozenset(
    {
        "InvalidParameter",
        "InvalidParameterValue",
        "AuthorizationError",
        "NotFound",
        "OptedOut",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "AccessDenied",
    }
)


class SnsSms:
    name = NotificationChannel.SMS

    def __init__(
        self,
        *,
        phone_number: str | None = None,
        topic_arn: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        timeout_seconds: float = 10.0,
    ) -> None:
        if not (phone_number or topic_arn):
            raise ValueError("SnsSms needs a phone number or a topic ARN")
        self._phone_number = phone_number
        self._topic_arn = topic_arn
        self._region = region
        self._endpoint_url = endpoint_url
        self._timeout = timeout_seconds
        self._client: Any = None
        self._lock = threading.Lock()

    async def send(self, message: Message) -> None:
        await asyncio.to_thread(self._publish, message.sms)

    def _sns(self) -> Any:
        # Created on first use, in the worker thread: a missing region or credentials then
        # fails one delivery with a recorded reason instead of the engine's start-up.
        with self._lock:
            if self._client is None:
                config = Config(
                    connect_timeout=self._timeout,
                    read_timeout=self._timeout,
                    retries={"max_attempts": 1, "mode": "standard"},
                )
                self._client = boto3.session.Session().client(
                    "sns", region_name=self._region, endpoint_url=self._endpoint_url, config=config
                )
            return self._client

    def _publish(self, text: str) -> None:
        # A topic, when set, wins: the owner subscribes phones to it in AWS, and one publish
        # reaches them all.
        request: dict[str, Any] = {"Message": text}
        if self._topic_arn:
            request["TopicArn"] = self._topic_arn
        else:
            request["PhoneNumber"] = self._phone_number
            request["MessageAttributes"] = {
                "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": SMS_TYPE}
            }
        try:
            self._sns().publish(**request)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "Unknown"))
            raise ChannelError(
                f"SNS {code}: {error.get('Message', '')}".strip(), permanent=code in PERMANENT_CODES
            ) from None
        except BotoCoreError as exc:
            raise ChannelError(f"SNS {type(exc).__name__}: {exc}") from None
