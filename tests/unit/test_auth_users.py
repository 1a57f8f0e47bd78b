"""`authenticate` lets in only a user whose `active` flag is exactly True."""

from __future__ import annotations

import pytest

from lib.auth import authenticate, issue_token
from lib.errors import Unauthorized
from lib.models import Role, User

SECRET = "x" * 40
USER_ID = "6560f0f0f0f0f0f0f0f0f0f0"


@pytest.mark.parametrize("active", ["false", "true", 1, None, False])
def test_a_user_whose_active_flag_is_not_exactly_true_is_refused(active):
    # model_construct skips pydantic's coercion, as a loader that forgot to validate would.
    user = User.model_construct(id=USER_ID, email="p@example.gc.ca", role=Role.PARTNER, active=active)
    with pytest.raises(Unauthorized) as raised:
        authenticate(issue_token(USER_ID, SECRET), SECRET, lambda _: user)
    assert raised.value.code == "INVALID_USER"


def test_an_active_user_is_let_in():
    user = User(id=USER_ID, email="p@example.gc.ca", role=Role.PARTNER, active=True)
    assert authenticate(issue_token(USER_ID, SECRET), SECRET, lambda _: user) is user
