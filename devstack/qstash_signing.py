"""The `Upstash-Signature` JWT that QStash puts on every delivery, as a pure function.

The dev server signs each delivery attempt with it, and tests of the receiving side
use it to forge signatures that are expired, made for another URL or another body,
or signed with a wrong key. The claims follow Upstash's format, which the `qstash`
SDK's `Receiver.verify` checks: HS256, `iss: "Upstash"`, `sub` the destination URL,
`iat`, `nbf`, `exp` (five minutes later), `jti`, and `body`, the base64url SHA-256
of the raw body without `=` padding.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

import jwt

SIGNATURE_ISSUER = "Upstash"
SIGNATURE_LIFETIME_SECONDS = 300


def body_hash(body: bytes) -> str:
    """base64url(SHA-256(body)) without padding, as in the signature's `body` claim."""
    digest = hashlib.sha256(body).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def sign_delivery(body: bytes, url: str, key: str, now: float, *, jti: str | None = None) -> str:
    """The `Upstash-Signature` for delivering `body` to `url` at time `now` (unix seconds).

    `jti` defaults to a fresh random id, as QStash gives every signature its own.
    """
    issued = int(now)
    claims = {
        "iss": SIGNATURE_ISSUER,
        "sub": url,
        "iat": issued,
        "nbf": issued,
        "exp": issued + SIGNATURE_LIFETIME_SECONDS,
        "jti": jti or f"jwt_{secrets.token_hex(12)}",
        "body": body_hash(body),
    }
    return jwt.encode(claims, key, algorithm="HS256")
