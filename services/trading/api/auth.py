"""The bearer token that guards the control plane (SPEC section 7).

The token comes from `STONKS_API_TOKEN`; when that is unset, from the token file in the data
directory; when there is none yet, a new one is generated (`secrets.token_urlsafe(32)`),
written to that file with mode 0600 and printed once on stderr. Only its SHA-256 digest is
kept in memory, and a presented token is compared digest to digest in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from services.shared.config import ConfigError
from services.trading.api.settings import ReadAccess

log = structlog.get_logger(__name__)
TOKEN_FILE_NAME = "api-token"
MIN_TOKEN_LENGTH = 16  # a control plane of real money deserves more than a short password


@dataclass(frozen=True, slots=True)
class ApiToken:
    digest: bytes
    source: str  # "environment", "file", "generated" or "given"

    @classmethod
    def from_secret(cls, secret: str, source: str = "given") -> ApiToken:
        return cls(_digest(secret), source)

    def matches(self, presented: str | None) -> bool:
        if not presented:
            return False
        return hmac.compare_digest(_digest(presented), self.digest)


@dataclass(frozen=True, slots=True)
class TokenRefusal:
    """Why a request does not carry the token: the 401's detail and its challenge (RFC 6750)."""

    detail: str
    challenge: str  # the WWW-Authenticate header


def refuse_token(token: ApiToken, authorization: str | None) -> TokenRefusal | None:
    """The one check of the bearer token, for the request guard and the routes alike: None when
    the Authorization header carries it."""
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and token.matches(credentials.strip()):
        return None
    if authorization is None:
        return TokenRefusal("bearer token required", 'Bearer realm="stonks-trading"')
    return TokenRefusal("invalid bearer token", 'Bearer realm="stonks-trading", error="invalid_token"')


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def resolve_token(environment_token: str | None, token_file: Path,
                  announce: Callable[[str], None] | None = None) -> ApiToken:
    """The token in force: the environment's, the file's, or a new one (stored, announced)."""
    if environment_token is not None:
        secret = environment_token.strip()
        if len(secret) < MIN_TOKEN_LENGTH:
            raise ConfigError(f"STONKS_API_TOKEN must be at least {MIN_TOKEN_LENGTH} characters "
                              "(python -c 'import secrets; print(secrets.token_urlsafe(32))' makes one)")
        return ApiToken.from_secret(secret, "environment")
    existing = _read_token_file(token_file)
    if existing is not None:
        log.info("API token read from its file", path=str(token_file))
        return ApiToken.from_secret(existing, "file")
    secret = secrets.token_urlsafe(32)
    written = _create_token_file(token_file, secret)
    if written != secret:  # another process created it first: use theirs
        return ApiToken.from_secret(written, "file")
    (announce or _print_once)(f"Generated the API token (shown once; kept in {token_file}, mode 0600):\n"
                              f"  {secret}\nSend it as 'Authorization: Bearer <token>'.")
    return ApiToken.from_secret(secret, "generated")


def _print_once(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _read_token_file(path: Path) -> str | None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("API token file was readable by others; restricting it to its owner", path=str(path))
        path.chmod(0o600)
    secret = path.read_text().strip()
    if len(secret) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"{path} holds no usable API token (shorter than {MIN_TOKEN_LENGTH} characters): "
                          "delete it to have a new one generated")
    return secret


def _create_token_file(path: Path, secret: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_token_file(path) or secret
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret + "\n")
    return secret


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def reads_protected(access: ReadAccess, api_host: str, server_host: str | None) -> bool:
    """Whether a read needs the token. `auto`: open only while the configured host is loopback
    and the request arrived on a loopback address (a server started with `--host 0.0.0.0`
    still protects reads from other machines)."""
    if access is ReadAccess.ALWAYS:
        return True
    if access is ReadAccess.NEVER:
        return False
    return not (is_loopback(api_host) and is_loopback(server_host))
