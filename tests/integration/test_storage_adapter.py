"""The storage adapter against moto's S3 server over HTTP: objects, links, errors mapped to ours."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import pytest
import requests

from lib.errors import NotFound, ServiceUnavailable
from lib.storage import PART_BYTES, Storage
from tests.support.s3_fault_proxy import S3FaultProxy
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


def _sigv4_valid(url: str, secret: str) -> bool:
    """Check a presigned GET as S3 does (SigV4, query auth): is its signature the one of this URL?"""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = dict(query).get("X-Amz-Signature", "")
    params = dict(query)
    scope = params["X-Amz-Credential"].split("/", 1)[1]  # date/region/service/aws4_request
    day, region, service, _ = scope.split("/")
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                               for k, v in sorted(query) if k != "X-Amz-Signature")
    canonical = "\n".join(["GET", quote(unquote(parts.path), safe="/-_.~"), canonical_query,
                           f"host:{parts.netloc}\n", params["X-Amz-SignedHeaders"], "UNSIGNED-PAYLOAD"])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", params["X-Amz-Date"], scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), given)


def test_a_link_signed_for_one_users_key_is_refused_for_another_users_key(storage):
    # moto checks no signature; real S3 does, as this check does: the key is part of what is signed.
    url, _ = storage.presign_get("u1/batches/b1/source.csv", download_as='attachment; filename="q.csv"')
    other = url.replace("/u1/batches/b1/", "/u2/batches/b2/")

    assert _sigv4_valid(url, "test")
    assert not _sigv4_valid(other, "test")
    assert not _sigv4_valid(url.replace("filename%3D%22q.csv", "filename%3D%22x.csv"), "test")


def test_a_stream_that_storage_refuses_midway_leaves_no_object_and_no_open_upload(s3_server, s3_bucket):
    # Storage fails at the wire on the second part of a multipart upload (the SDK's retries included).
    with S3FaultProxy(s3_server.url) as proxy:
        through = Storage(s3_bucket, region="us-east-1", endpoint_url=proxy.url,
                          credentials={"aws_access_key_id": "test", "aws_secret_access_key": "test"})
        proxy.rule = lambda request: "error" if request.operation == "multipart-part" and "partNumber=2" in \
            request.path else None

        with pytest.raises(ServiceUnavailable) as away:
            through.put_stream("u1/exports/results.csv", (b"x" * (1024 * 1024) for _ in range(20)),
                               content_type="text/csv")

        assert away.value.code == "STORAGE_UNAVAILABLE"
        assert proxy.stats().get("error multipart-part", 0) >= 1
    direct = s3_server.storage(s3_bucket)
    assert direct.keys("u1/") == []
    assert direct.client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
