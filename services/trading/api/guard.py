"""What every request must pass before the app reads a byte of its body (issue 12, defects 6
and 9), in this order:

1. its Host is a name this server answers to (else 400): a web page that rebinds its own DNS
   name to 127.0.0.1 sends that name, so it cannot read the API, even where reads are open on
   loopback. An IP address is always accepted: a page can only send one as its own origin,
   which the browser keeps apart from ours; Kubernetes' probes and Prometheus send the pod's.
2. a state change (any method but GET, HEAD, OPTIONS) carries the token (else 401);
3. its body is at most `MAX_BODY_BYTES` (else 413): by its Content-Length before reading,
   and by counting while reading one sent without (chunked).

An ASGI middleware rather than dependencies: FastAPI reads and parses a body before it runs
a route's dependencies, and the API shares its event loop with the engine under `run`.
Refusals close the connection, so the server does not go on receiving a body nobody reads.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.trading.api.auth import refuse_token

# No request needs more: the largest, a backtest over 500 tickers, is about 10 KB.
MAX_BODY_BYTES = 64 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost"})


def served_names(api_host: str, allowed: Iterable[str] = ()) -> frozenset[str]:
    """The names this server answers to: localhost, the host it was told to listen on (when a
    name), and those of STONKS_API_ALLOWED_HOSTS."""
    return LOOPBACK_NAMES | {name.lower() for name in (api_host, *allowed)}


def host_name(host_header: str) -> str:
    """`name:port` or `[v6]:port` to the bare lower-case name or address."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, _, port = host.rpartition(":")
    return (name if name and port.isdigit() else host).removesuffix(".")


def host_allowed(host_header: str | None, names: frozenset[str]) -> bool:
    if not host_header:
        return False
    host = host_name(host_header)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host in names
    return True


class RequestGuard:
    """The checks above, with the names and token of the app's runtime."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = _refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if not _has_body(Headers(scope=scope)):
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_at_most(receive, MAX_BODY_BYTES)
        except _BodyTooLarge:
            await _too_large()(scope, receive, send)
            return
        if body is not None:
            await self.app(scope, _replay(body, receive), send)


class _BodyTooLarge(Exception):
    pass


def _refusal(scope: Scope) -> JSONResponse | None:
    runtime = scope["app"].state.runtime
    if runtime is None:  # only before the lifespan has built it: nothing to check against yet
        return _refuse(503, "the service is starting")
    headers = Headers(scope=scope)
    host = headers.get("host")
    if not host_allowed(host, runtime.allowed_hosts):
        return _refuse(
            400,
            f"this server does not answer to the host {host!r:.80}: a name it serves "
            "belongs in STONKS_API_ALLOWED_HOSTS",
        )
    if scope["method"] not in SAFE_METHODS:
        token = refuse_token(runtime.token, headers.get("authorization"))
        if token is not None:
            return _refuse(401, token.detail, {"WWW-Authenticate": token.challenge})
    if _declared_length(headers) > MAX_BODY_BYTES:
        return _too_large()
    return None


def _refuse(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"detail": detail}, status_code=status, headers={**(headers or {}), "Connection": "close"}
    )


def _too_large() -> JSONResponse:
    return _refuse(
        413,
        f"request body larger than {MAX_BODY_BYTES} bytes ({MAX_BODY_BYTES // 1024} KiB): "
        "no request of this API needs more",
    )


def _declared_length(headers: Headers) -> int:
    length = headers.get("content-length", "")
    return int(length) if length.isdigit() else 0  # the server refuses a malformed one itself


def _has_body(headers: Headers) -> bool:
    return _declared_length(headers) > 0 or "transfer-encoding" in headers


async def _read_at_most(receive: Receive, limit: int) -> bytes | None:
    """The whole body; None if the client went away before sending it all (nothing is done
    for it). Stops reading as soon as it exceeds `limit`: the rest is never read."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, then whatever the server says next (a disconnect)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
