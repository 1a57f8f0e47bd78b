"""The storage adapter against moto's S3 server over HTTP: objects, links, errors mapped to ours."""

from __future__ import annotations

import base64
import json
import time

import pytest
import requests

from lib.errors import NotFound, ServiceUnavailable
from lib.storage import PART_BYTES, Storage
from tests.support.s3_server import PAGE_ORIGIN, S3Server

pytest_plugins = ["tests.support.s3_fixtures"]  # moto's server and the live app with storage


@pytest.fixture
def storage(s3_server: S3Server, s3_bucket: str) -> Storage:
    return s3_server.storage(s3_bucket)


def test_a_stream_past_one_part_is_written_as_a_multipart_upload_with_flat_memory(storage):
    chunks = [bytes([n]) * (1024 * 1024) for n in range(20)]  # 20 MiB: three parts of 8 MiB at most

    size = storage.put_stream("u1/big.bin", iter(chunks), content_type="application/octet-stream")

    assert size == 20 * 1024 * 1024 > 2 * PART_BYTES
    assert storage.head("u1/big.bin").size == size
    assert requests.get(storage.presign_get("u1/big.bin")[0], timeout=30).content == b"".join(chunks)


def test_a_stream_that_fails_midway_leaves_no_object_and_no_open_upload(storage, s3_bucket):
    def chunks():
        for _ in range(10):
            yield b"x" * (1024 * 1024)
        raise RuntimeError("the database went away mid-export")

    with pytest.raises(RuntimeError):
        storage.put_stream("u1/half.csv", chunks(), content_type="text/csv")

    assert storage.keys("u1/") == []
    assert storage.client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_a_missing_object_is_our_not_found(storage):
    with pytest.raises(NotFound) as missing:
        storage.head("u1/none.csv")

    assert missing.value.code == "OBJECT_NOT_FOUND"


def test_the_upload_form_fixes_the_key_the_type_and_the_largest_size_in_its_signed_policy(storage):
    post = storage.presign_post("u1/uploads/abc/q.csv", content_type="text/csv", max_bytes=1234)

    policy = json.loads(base64.b64decode(post.fields["policy"]))
    assert {"key": "u1/uploads/abc/q.csv"} in policy["conditions"]
    assert ["content-length-range", 1, 1234] in policy["conditions"]
    assert {"Content-Type": "text/csv"} in policy["conditions"]
    assert post.fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    assert 14 * 60 <= (post.expires_at.timestamp() - time.time()) <= 15 * 60


def test_the_bucket_lets_the_page_post_the_form_from_its_origin_and_no_other(storage):
    post = storage.presign_post("u1/uploads/abc/q.csv", content_type="text/csv", max_bytes=100)

    allowed = requests.options(post.url, headers={"Origin": PAGE_ORIGIN, "Access-Control-Request-Method": "POST"},
                               timeout=10)
    other = requests.options(post.url, headers={"Origin": "https://evil.example",
                                                "Access-Control-Request-Method": "POST"}, timeout=10)

    assert allowed.status_code == 200 and allowed.headers.get("Access-Control-Allow-Origin") == PAGE_ORIGIN
    assert other.status_code == 403  # a browser sends nothing after a refused preflight


def test_storage_away_is_a_service_unavailable_within_seconds(s3_server, s3_bucket):
    storage = Storage(s3_bucket, region="us-east-1", endpoint_url="http://127.0.0.1:9",  # nothing listens
                      credentials={"aws_access_key_id": "test", "aws_secret_access_key": "test"})
    started = time.monotonic()

    for call in (storage.check, lambda: storage.head("k"), lambda: storage.put("k", b"x", content_type="text/csv")):
        with pytest.raises(ServiceUnavailable) as away:
            call()
        assert away.value.code == "STORAGE_UNAVAILABLE"
    assert time.monotonic() - started < 15
