"""Order jobs are signed, so the broker fills only the jobs the engine's outbox sent.

Whoever can write to Redis can push a job onto `stonks:queue:broker_orders`; a broker that
filled whatever it found there would trade for them. The engine signs each job as it delivers
it, with HMAC-SHA256 under a key only it and the broker hold, and the broker refuses a job
whose signature is missing or wrong.

What is signed is the job's canonical content: the JSON object as sent, without its
`signature` field, serialised with keys sorted, no whitespace and non-ASCII characters escaped
(`json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=True)`). The signature
is that content's HMAC in lower-case hex, sent as the job's `signature` field. Changing any
field after signing (a quantity, a side, a ticker) breaks it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from services.shared.orders import OrderJob
from services.shared.secret_files import generate_secret

SIGNATURE_FIELD = "signature"
# As long as what `generate_secret` makes (43 characters); a short key is guessable offline
# from a single signed job.
MIN_KEY_LENGTH = 32


class UnsignedOrderJob(Exception):
    """The job does not carry the engine's signature; the message says how."""


def canonical_content(content: dict[str, Any]) -> bytes:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


@dataclass(frozen=True, slots=True)
class OrderSigner:
    key: bytes = field(repr=False)

    @classmethod
    def from_secret(cls, secret: str) -> OrderSigner:
        if len(secret) < MIN_KEY_LENGTH:
            raise ValueError(f"an order-signing key needs at least {MIN_KEY_LENGTH} characters")
        return cls(secret.encode("utf-8"))

    @classmethod
    def generate(cls) -> OrderSigner:
        """A key of its own, for a process that is both the engine and the broker and keeps
        nothing on the queue across runs (a demo replay, a benchmark)."""
        return cls.from_secret(generate_secret())

    def _mac(self, content: dict[str, Any]) -> str:
        return hmac.new(self.key, canonical_content(content), hashlib.sha256).hexdigest()

    def sign(self, job: OrderJob) -> str:
        """The message to push: the job's JSON with its signature."""
        content = job.model_dump(mode="json")
        return json.dumps({**content, SIGNATURE_FIELD: self._mac(content)})

    def verified(self, message: str) -> dict[str, Any]:
        """The job's content (to validate as an `OrderJob`) if this key signed it; otherwise
        `UnsignedOrderJob` saying why."""
        try:
            content = json.loads(message)
        except ValueError:
            raise UnsignedOrderJob("not a JSON object, so not a job the engine signed") from None
        if not isinstance(content, dict):
            raise UnsignedOrderJob("not a JSON object, so not a job the engine signed")
        signature = content.pop(SIGNATURE_FIELD, None)
        if signature is None:
            raise UnsignedOrderJob("the job carries no signature")
        if not isinstance(signature, str) or not hmac.compare_digest(
            signature.encode("utf-8"), self._mac(content).encode("ascii")
        ):
            raise UnsignedOrderJob("the job's signature does not match its content")
        return content
