"""Real local servers for the channel tests, and stand-in channels for the service tests.

The channels' counterparts are real servers on 127.0.0.1: an SMTP server (aiosmtpd), an HTTP
server (the webhook receiver and the Gmail token and send endpoints) and an SNS endpoint
(moto's server, spoken to by boto3 over HTTP). PostgreSQL and Redis are the suite's real ones.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email import message_from_bytes
from email.message import Message as EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from services.shared.db import create_pool
from services.shared.schemas import NotificationChannel
from services.trading.core.clock import SimulatedClock
from services.trading.notifications import events
from services.trading.notifications.delivery import DeliveryPolicy
from services.trading.notifications.formatting import Message
from services.trading.notifications.notification_store import PostgresNotificationStore
from services.trading.notifications.rate_limit import RateLimiter
from services.trading.notifications.service import NotificationService
from services.trading.notifications.settings import NotificationSettings

# Fast policy: the retry schedule is the real one, scaled down a thousandfold.
FAST = DeliveryPolicy(backoff_base_seconds=0.001, attempt_timeout_seconds=2.0, store_timeout_seconds=5.0)
NOON = datetime(2026, 3, 6, 17, 0, tzinfo=UTC)  # a Friday session, 12:00 in New York


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def breaker_event(at: datetime = NOON) -> events.NotificationEvent:
    return events.circuit_breaker_triggered(
        at,
        trigger_type="daily_loss",
        reason="daily loss 3.20% of start-of-day value",
        threshold_value=Decimal("0.03"),
        actual_value=Decimal("0.032"),
        cooldown_expires=datetime(2026, 3, 9, 13, 30, tzinfo=UTC),
    )


# -- stand-in channels (test doubles of a *channel*, never of Redis or PostgreSQL) ---------


@dataclass
class RecordingChannel:
    """Delivers instantly and remembers what it got and when (by the given clock)."""

    name: NotificationChannel
    clock: SimulatedClock | None = None
    received: list[tuple[Message, datetime | None]] = field(default_factory=list)

    async def send(self, message: Message) -> None:
        self.received.append((message, self.clock.now() if self.clock else None))


@dataclass
class ScriptedChannel:
    """Runs `behaviour(attempt_number)` on each send: raise, hang or return."""

    name: NotificationChannel
    behaviour: Callable[[int], Any]
    calls: int = 0
    observed: list[Any] = field(default_factory=list)

    async def send(self, message: Message) -> None:
        self.calls += 1
        result = self.behaviour(self.calls)
        if asyncio.iscoroutine(result):
            await result


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(NOON)


def make_service(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    clock: SimulatedClock,
    channels: dict[NotificationChannel, Any],
    settings: NotificationSettings | None = None,
    policy: DeliveryPolicy = FAST,
) -> NotificationService:
    settings = settings or NotificationSettings(
        sms_enabled=NotificationChannel.SMS in channels,
        sms_phone_number="+15555550100",
        email_enabled=NotificationChannel.EMAIL in channels,
        email_recipients=("owner@example.com",),
        webhook_enabled=NotificationChannel.WEBHOOK in channels,
    )
    return NotificationService(
        settings=settings,
        channel_factory=lambda s: {c: channels[c] for c in s.enabled_channels() if c in channels},
        store=PostgresNotificationStore(pool),
        rate_limiter=RateLimiter(redis),
        clock=clock,
        policy=policy,
    )


# -- SMTP -------------------------------------------------------------------------------------

SMTP_USER, SMTP_PASSWORD = "alerts@example.com", "smtp-app-password-5f1e"


@dataclass
class SmtpServer:
    host: str
    port: int
    ca_file: Path
    messages: list[EmailMessage] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)


class _Inbox:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp, session, envelope) -> str:
        self.server.messages.append(message_from_bytes(envelope.original_content or envelope.content))
        return "250 OK"


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _self_signed(tmp_path_factory.mktemp("tls"))


def _start_smtp(tls_files: tuple[Path, Path], *, implicit_tls: bool) -> tuple[Controller, SmtpServer]:
    cert_file, key_file = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server = SmtpServer("127.0.0.1", free_port(), cert_file)

    def authenticate(smtp, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (SMTP_USER, SMTP_PASSWORD)
        if ok:
            server.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    # aiosmtpd counts only STARTTLS as TLS for `auth_require_tls`; with implicit TLS the whole
    # connection is encrypted from the first byte anyway.
    tls = (
        {"ssl_context": context, "auth_require_tls": False}
        if implicit_tls
        else {"tls_context": context, "require_starttls": True, "auth_require_tls": True}
    )
    controller = Controller(
        _Inbox(server),
        hostname=server.host,
        port=server.port,
        authenticator=authenticate,
        auth_required=True,
        **tls,
    )
    controller.start()
    return controller, server


@pytest.fixture
def smtp_server(tls_files) -> Iterator[SmtpServer]:
    """STARTTLS on a plain port (Gmail's 587 style), login required after TLS."""
    controller, server = _start_smtp(tls_files, implicit_tls=False)
    yield server
    controller.stop()


@pytest.fixture
def smtps_server(tls_files) -> Iterator[SmtpServer]:
    """TLS from the first byte (port 465 style)."""
    controller, server = _start_smtp(tls_files, implicit_tls=True)
    yield server
    controller.stop()


# -- HTTP: webhook receiver, Gmail token and send endpoints ----------------------------------


@dataclass
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpServer:
    """Records every request; `responses[path]` lists (status, body) answers, the last repeating."""

    url: str
    requests: list[HttpRequest] = field(default_factory=list)
    responses: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str) -> tuple[int, Any]:
        with self.lock:
            queue = self.responses.get(path) or [(200, {"ok": True})]
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def to(self, path: str) -> list[HttpRequest]:
        return [r for r in self.requests if r.path == path]


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    recorder: HttpServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with recorder.lock:
                recorder.requests.append(HttpRequest("POST", self.path, dict(self.headers.items()), body))
            status, payload = recorder.answer(self.path)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder = HttpServer(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield recorder
    server.shutdown()
    server.server_close()
    thread.join()


# -- SNS: moto's server, a real HTTP endpoint boto3 talks to ----------------------------------


@dataclass(frozen=True)
class SnsEndpoint:
    url: str
    region: str = "us-east-1"


@pytest.fixture(scope="session")
def sns_server() -> Iterator[SnsEndpoint]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield SnsEndpoint(f"http://{host}:{port}")
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials the local endpoint accepts; nothing here can reach AWS itself."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SNS"):
        monkeypatch.delenv(name, raising=False)
