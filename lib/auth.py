"""Authentication: HS256 JWTs (PyJWT), users that exist and are active, role guards."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import jwt

from lib.errors import Forbidden, Unauthorized
from lib.models import Role, User

ALGORITHM = "HS256"
BATCH_ROLES = (Role.ADMIN, Role.PARTNER)


def issue_token(user_id: str, secret: str, *, ttl_seconds: int = 12 * 3600, now: float | None = None,
                email: str | None = None) -> str:
    """A signed token for `user_id` (used by the local stack and tests); `email` is shown by the page."""
    issued = int(now if now is not None else time.time())
    claims: dict[str, object] = {"sub": user_id, "iat": issued, "exp": issued + ttl_seconds}
    if email:
        claims["email"] = email
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(token: str, secret: str) -> str:
    """The token's subject. Raises `Unauthorized` for any bad, expired or unsigned token."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],  # pinned: `none` and RS/HS confusion are refused by PyJWT
            options={"require": ["exp", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The token has expired; sign in again.", code="TOKEN_EXPIRED") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("The token is not valid.", code="INVALID_TOKEN") from exc
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise Unauthorized("The token has no subject.", code="INVALID_TOKEN")
    return subject


def authenticate(token: str, secret: str, load_user: Callable[[str], User | None]) -> User:
    """The active user the token speaks for. Raises `Unauthorized` (INVALID_USER).

    `load_user` answers None for an unknown id and for a malformed user record
    (`lib.store.users`), so both are refused alike.
    """
    user = load_user(verify_token(token, secret))
    if user is None or user.active is not True:  # only a real True: a stray "false" string is truthy
        raise Unauthorized("The token's user does not exist or is not active.", code="INVALID_USER")
    return user


def require_role(user: User, roles: Iterable[Role]) -> User:
    """Raise `Forbidden` unless the user has one of `roles`."""
    allowed = tuple(roles)
    if user.role not in allowed:
        raise Forbidden(
            f"Your role ({user.role.value}) may not use this endpoint.",
            code="ROLE_NOT_ALLOWED",
            details={"allowedRoles": [r.value for r in allowed]},
        )
    return user
