"""What every fuzz test checks of an answer: a success it expects, or a 4xx with a coded error envelope."""

from __future__ import annotations

import re

from hypothesis import event
from hypothesis.errors import InvalidArgument
from werkzeug.test import TestResponse

CODE = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*")


def record(outcome: str) -> None:
    """Count an outcome in Hypothesis's statistics (`--hypothesis-show-statistics`)."""
    try:
        event(outcome)
    except InvalidArgument:  # not inside a Hypothesis test: nothing to count
        return


def assert_answered_with_a_code(response: TestResponse, *success: int) -> None:
    """A 2xx in `success`, or a 4xx with the error envelope; never a 5xx."""
    status = response.status_code
    assert status < 500, f"{status}: {response.get_data(as_text=True)[:500]}"
    if status in success:
        record(str(status))
        return
    assert 400 <= status < 500, status
    body = response.get_json(silent=True)
    assert isinstance(body, dict) and set(body) == {"error"}, response.get_data()[:500]
    error = body["error"]
    assert CODE.fullmatch(error["code"]), error
    assert isinstance(error["message"], str) and error["message"], error
    record(f"{status} {error['code']}")


def code_of(response: TestResponse) -> str | None:
    body = response.get_json(silent=True)
    return body["error"]["code"] if isinstance(body, dict) and "error" in body else None
