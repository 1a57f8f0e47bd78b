import base64
import json
import time

import jwt
import pytest

from lib.auth import authenticate, issue_token, require_role, verify_token
from lib.errors import Forbidden, Unauthorized
from lib.models import Role, User

SECRET = "x" * 40
PARTNER = User(id="6560f0f0f0f0f0f0f0f0f0f0", email="p@example.gc.ca", role=Role.PARTNER, active=True)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_a_token_issued_for_a_user_verifies_to_that_user():
    assert verify_token(issue_token(PARTNER.id, SECRET), SECRET) == PARTNER.id


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode({"sub": "u", "exp": time.time() + 60}, "another-secret-that-is-long-enough!!", algorithm="HS256"),
        jwt.encode({"sub": "u"}, SECRET, algorithm="HS256"),  # no exp
        jwt.encode({"exp": time.time() + 60}, SECRET, algorithm="HS256"),  # no sub
        f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({'sub': 'u', 'exp': time.time() + 60})}.",
        jwt.encode({"sub": "u", "exp": time.time() + 60}, SECRET, algorithm="HS512"),
        "not-a-token",
        # HS/RS confusion: an RS256 header whose "signature" is an HMAC made with the secret.
        f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64({'sub': 'u', 'exp': time.time() + 60})}."
        + base64.urlsafe_b64encode(b"x" * 32).decode().rstrip("="),
    ],
    ids=["wrong-secret", "no-exp", "no-sub", "alg-none", "other-alg", "garbage", "rs256-confusion"],
)
def test_bad_tokens_are_refused(token):
    with pytest.raises(Unauthorized):
        verify_token(token, SECRET)


def test_an_expired_token_is_refused_with_its_own_code():
    token = issue_token("u", SECRET, ttl_seconds=1, now=time.time() - 100)
    with pytest.raises(Unauthorized) as info:
        verify_token(token, SECRET)
    assert info.value.code == "TOKEN_EXPIRED"


def test_a_token_for_a_missing_or_inactive_user_is_refused():
    token = issue_token(PARTNER.id, SECRET)
    with pytest.raises(Unauthorized):
        authenticate(token, SECRET, lambda _id: None)
    inactive = PARTNER.model_copy(update={"active": False})
    with pytest.raises(Unauthorized):
        authenticate(token, SECRET, lambda _id: inactive)
    assert authenticate(token, SECRET, lambda _id: PARTNER) == PARTNER


def test_a_role_outside_the_allowed_ones_is_forbidden():
    user = PARTNER.model_copy(update={"role": Role.USER})
    with pytest.raises(Forbidden):
        require_role(user, (Role.ADMIN, Role.PARTNER))
    assert require_role(PARTNER, (Role.ADMIN, Role.PARTNER)) == PARTNER
