"""The bearer token that guards the control plane (docs/contracts.md section 7).

The token comes from `STONKS_API_TOKEN`; when that is unset, from the token file in the data
directory; when there is none yet, a new one is generated and kept in that file with mode 0600
(`services.shared.secret_files`, like every generated secret), and the file's path, never the
token, is printed once on stderr. Only its SHA-256 digest is kept in memory, and a presented
token is compared digest to digest in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from services.shared.config import ConfigError
from services.shared.secret_files import kept_secret
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


def resolve_token(
    environment_token: str | None, token_file: Path, announce: Callable[[str], None] | None = None
) -> ApiToken:
    """The token in force: the environment's, the file's, or a new one (stored, and its file
    announced: the value itself is never printed, so it cannot end up in a run log)."""
    if environment_token is not None:
        secret = environment_token.strip()
        if len(secret) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"STONKS_API_TOKEN must be at least {MIN_TOKEN_LENGTH} characters "
                "(python -c 'import secrets; print(secrets.token_urlsafe(32))' makes one)"
            )
        return ApiToken.from_secret(secret, "environment")
    kept = kept_secret(token_file, "API token", min_length=MIN_TOKEN_LENGTH)
    if not kept.created:
        log.info("API token read from its file", path=str(token_file))
        return ApiToken.from_secret(kept.value, "file")
    (announce or _print_once)(
        f"Generated the API token; it is kept in {token_file} (mode 0600).\n"
        f"Send it as 'Authorization: Bearer <token>', e.g. TOKEN=$(cat {token_file})"
    )
    return ApiToken.from_secret(kept.value, "generated")


def _print_once(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
