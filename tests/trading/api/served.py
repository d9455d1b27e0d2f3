"""The app served by a real uvicorn on a free loopback port, on the caller's event loop: for
what only a real HTTP server shows (framing, Content-Length, chunked bodies, connections)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI


@asynccontextmanager
async def uvicorn_serving(app: FastAPI) -> AsyncIterator[int]:
    """Yields the port."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises why it could not start
        await asyncio.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


async def raw_exchange(
    port: int, request: bytes, body_chunks: Sequence[bytes] = (), timeout: float = 5
) -> bytes:
    """Send a request as bytes (then, optionally, body chunks while the server answers) and read
    until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        for chunk in body_chunks:
            writer.write(chunk)
        with contextlib.suppress(ConnectionError):  # the server answered and closed while the body went out
            await writer.drain()
        return await asyncio.wait_for(_read_until_closed(reader), timeout)
    finally:
        writer.close()


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    received = b""
    try:
        while chunk := await reader.read(65536):
            received += chunk
    except ConnectionResetError:
        pass  # closed with part of our body unread: what was answered is still here
    return received
