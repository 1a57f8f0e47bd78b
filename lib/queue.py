"""Step messages over QStash: publish them (the `qstash` SDK) and verify their signatures.

Verification mirrors the SDK's `Receiver` (issuer, subject = this endpoint's public URL,
body hash, expiry; current key, then next key) but with a small clock leeway: the
SDK's `clock_tolerance` never reaches PyJWT, and a receiver whose clock is a second
behind QStash's would otherwise refuse every fresh message as "not yet valid".
"""

from __future__ import annotations

import base64
import hashlib
import math
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from bson import ObjectId
from qstash import QStash

from lib.errors import BadRequest, ServiceUnavailable, Unauthorized

SIGNATURE_HEADER = "Upstash-Signature"
CLOCK_LEEWAY_SECONDS = 5


class StepQueue(Protocol):
    def publish_step(self, batch_id: str, seq: int, *, dedup_id: str, delay_seconds: float = 0) -> str:
        """Publish a step message for the batch; return the message id. Raises `ServiceUnavailable`."""
        ...


@dataclass(frozen=True)
class StepMessage:
    batch_id: str
    seq: int


class QStashStepQueue:
    """Publishes step messages to QStash (or a QStash-compatible server at `base_url`)."""

    def __init__(self, token: str, base_url: str | None, destination_url: str, retries: int = 3):
        self.destination_url = destination_url
        self.retries = retries
        self._client = QStash(token, base_url=base_url, retry={"retries": 2, "backoff": lambda n: 100 * (n + 1)})

    def publish_step(self, batch_id: str, seq: int, *, dedup_id: str, delay_seconds: float = 0) -> str:
        delay = f"{max(0, math.ceil(delay_seconds))}s" if delay_seconds > 0 else None
        try:
            response: Any = self._client.message.publish_json(
                url=self.destination_url,
                body={"batchId": batch_id, "seq": seq},
                deduplication_id=dedup_id,
                delay=delay,
                retries=self.retries,
            )
        except Exception as exc:  # QStashError, and httpx's transport errors, which the SDK lets through
            raise ServiceUnavailable(
                f"The queue refused the step message ({exc.__class__.__name__}).", code="QUEUE_UNAVAILABLE"
            ) from exc
        return str(getattr(response, "message_id", ""))


def body_hash(body: bytes) -> str:
    """base64url(SHA-256(body)) without padding, as QStash puts it in the `body` claim."""
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode().rstrip("=")


def verify_signature(signature: str | None, body: bytes, url: str, keys: tuple[str, ...]) -> None:
    """Accept the delivery only if signed by a current or next key for this URL and body.

    Raises `Unauthorized` otherwise.
    """
    if not signature:
        raise Unauthorized("Missing Upstash-Signature header.", code="MISSING_SIGNATURE")
    last_problem = "no signing key configured"
    for key in keys:
        try:
            claims = jwt.decode(
                signature,
                key,
                algorithms=["HS256"],
                issuer="Upstash",
                leeway=CLOCK_LEEWAY_SECONDS,
                options={"require": ["iss", "sub", "exp", "nbf", "body"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The Upstash-Signature has expired.", code="INVALID_SIGNATURE") from None
        except jwt.PyJWTError as exc:
            last_problem = exc.__class__.__name__
            continue
        if claims.get("sub") != url:
            raise Unauthorized("The Upstash-Signature was made for another URL.", code="INVALID_SIGNATURE")
        if str(claims.get("body", "")).rstrip("=") != body_hash(body):
            raise Unauthorized("The Upstash-Signature does not match the body.", code="INVALID_SIGNATURE")
        return
    raise Unauthorized(f"The Upstash-Signature is not valid ({last_problem}).", code="INVALID_SIGNATURE")


def parse_step_message(payload: dict[str, Any]) -> StepMessage:
    """The step message in a verified body. Raises `BadRequest` for a wrong shape."""
    batch_id = payload.get("batchId")
    seq = payload.get("seq", 0)
    if not isinstance(batch_id, str) or not ObjectId.is_valid(batch_id):
        raise BadRequest("The step message needs a batchId that is an ObjectId.", code="INVALID_STEP_MESSAGE")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise BadRequest("The step message's seq must be an integer.", code="INVALID_STEP_MESSAGE")
    return StepMessage(batch_id=batch_id, seq=seq)
