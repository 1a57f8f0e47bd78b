import time

import pytest

from devstack.qstash_signing import sign_delivery
from lib.errors import Unauthorized
from lib.queue import verify_signature
from lib.settings import DEV_QSTASH_CURRENT_SIGNING_KEY as CURRENT
from lib.settings import DEV_QSTASH_NEXT_SIGNING_KEY as NEXT

URL = "http://127.0.0.1:3000/api/batch/process-step"
BODY = b'{"batchId":"abc","seq":1}'
KEYS = (CURRENT, NEXT)


def test_a_delivery_signed_with_the_current_or_the_next_key_is_accepted():
    verify_signature(sign_delivery(BODY, URL, CURRENT, time.time()), BODY, URL, KEYS)
    verify_signature(sign_delivery(BODY, URL, NEXT, time.time()), BODY, URL, KEYS)


def test_a_signature_from_a_clock_a_little_ahead_is_accepted():
    verify_signature(sign_delivery(BODY, URL, CURRENT, time.time() + 3), BODY, URL, KEYS)


@pytest.mark.parametrize(
    ("signature", "body", "url"),
    [
        (None, BODY, URL),
        ("", BODY, URL),
        (sign_delivery(BODY, URL, "sig_someotherkey", time.time()), BODY, URL),
        (sign_delivery(BODY, URL, CURRENT, time.time() - 3600), BODY, URL),
        (sign_delivery(BODY, "http://evil.example/api/batch/process-step", CURRENT, time.time()), BODY, URL),
        (sign_delivery(BODY, URL, CURRENT, time.time()), b'{"batchId":"other","seq":1}', URL),
        ("garbage.token.here", BODY, URL),
    ],
    ids=["missing", "empty", "unknown-key", "expired", "other-url", "other-body", "garbage"],
)
def test_a_delivery_that_is_not_signed_for_this_url_and_body_is_refused(signature, body, url):
    with pytest.raises(Unauthorized):
        verify_signature(signature, body, url, KEYS)
