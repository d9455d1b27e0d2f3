"""The load generator of `bench/api/run.py`, run as its own process: `concurrency` clients on
one event loop send GETs to one URL until `requests` answers or `seconds` have passed, then
print requests per second and latency percentiles as JSON. Loopback only."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

import httpx


async def main(url: str, token: str, concurrency: int, requests: int, seconds: float, warmup: int) -> dict:
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to load {host}: this benchmark targets loopback only")
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:
        for _ in range(warmup):
            (await client.get(url)).raise_for_status()
        latencies: list[float] = []
        errors = 0
        deadline = time.perf_counter() + seconds
        remaining = [requests]

        async def worker() -> None:
            nonlocal errors
            while remaining[0] > 0 and time.perf_counter() < deadline:
                remaining[0] -= 1
                started = time.perf_counter()
                response = await client.get(url)
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)

    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1] * 1000, 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--token", required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    print(
        json.dumps(
            asyncio.run(
                main(args.url, args.token, args.concurrency, args.requests, args.seconds, args.warmup)
            )
        )
    )
