"""A Redis list used as a queue that loses nothing when its consumer dies mid-job.

`take` atomically moves a message from the queue to a processing list (BLMOVE); `ack`
removes it from there once handled. A consumer that dies between the two leaves the message in
the processing list, and `recover` puts it back at the head of the queue on the next start,
so it is handled again: consumers must be idempotent (the broker is, by `client_order_id`).
Each queue has a single consumer, which is what makes `recover` at start safe.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from services.shared.redis_keys import processing_queue

DEAD_LETTER_SUFFIX = ":dead"


class ReliableQueue:
    def __init__(self, client: aioredis.Redis, name: str) -> None:
        self.client = client
        self.name = name
        self.processing = processing_queue(name)
        self.dead_letters = f"{name}{DEAD_LETTER_SUFFIX}"

    async def push(self, message: str) -> None:
        await self.client.lpush(self.name, message)

    async def take(self, timeout_seconds: float = 1.0) -> str | None:
        """The oldest message, moved to the processing list; None when none came in time."""
        message = await self.client.blmove(self.name, self.processing, timeout_seconds, "RIGHT", "LEFT")
        return message.decode() if isinstance(message, bytes) else message

    async def take_nowait(self) -> str | None:
        """The oldest message if there is one, without waiting (blocking waits on the server
        are only as fine as its timer, about 100 ms)."""
        message = await self.client.lmove(self.name, self.processing, "RIGHT", "LEFT")
        return message.decode() if isinstance(message, bytes) else message

    async def wait_for_message(self, timeout_seconds: float = 1.0) -> bool:
        """Block until the queue holds a message (True) or `timeout_seconds` pass (False),
        taking nothing: BLMOVE of the queue onto itself, tail to tail, leaves it as it was.
        Lets a consumer that drains the queue elsewhere wake the moment work arrives."""
        return await self.client.blmove(self.name, self.name, timeout_seconds, "RIGHT", "RIGHT") is not None

    async def ack(self, message: str) -> None:
        await self.client.lrem(self.processing, 1, message)

    async def ack_all(self, message: str) -> None:
        """Remove every copy of `message` from the processing list: a consumer that holds jobs
        until their outcome (the Alpaca broker) may hold one job the producer pushed twice."""
        await self.client.lrem(self.processing, 0, message)

    async def dead_letter(self, message: str) -> None:
        """Park a message that can never be handled (malformed), so it stops coming back."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.lpush(self.dead_letters, message)
            pipe.lrem(self.processing, 1, message)
            await pipe.execute()

    async def recover(self) -> int:
        """Put messages a dead consumer left half-handled back at the head of the queue, oldest
        first (the newest sits at the left of the processing list)."""
        moved = 0
        while await self.client.lmove(self.processing, self.name, "LEFT", "RIGHT") is not None:
            moved += 1
        return moved

    async def depth(self) -> int:
        return int(await self.client.llen(self.name)) + int(await self.client.llen(self.processing))
