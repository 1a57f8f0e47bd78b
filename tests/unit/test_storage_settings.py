"""Object storage settings and keys."""

from __future__ import annotations

import pytest

from lib.errors import ConfigError
from lib.settings import Settings
from lib.storage import export_key, safe_file_name, source_key, upload_key

BASE = {
    "MONGODB_URI": "mongodb://127.0.0.1:27017",
    "JWT_SECRET": "s" * 32,
    "PUBLIC_BASE_URL": "http://127.0.0.1:3000",
    "QSTASH_URL": "http://127.0.0.1:8080",
}


def test_without_a_bucket_storage_is_off_and_the_limits_keep_their_defaults():
    settings = Settings.from_env(BASE)

    assert not settings.storage_configured and settings.storage_credentials() == {}
    assert (settings.max_upload_bytes_direct, settings.max_batch_rows_direct, settings.retention_days) == (
        100 * 1024 * 1024, 100_000, 30)


def test_a_bucket_with_an_endpoint_and_keys_turns_storage_on_and_keeps_the_keys_out_of_repr():
    settings = Settings.from_env({**BASE, "S3_BUCKET": "ai-answers-dev", "S3_ENDPOINT_URL": "http://127.0.0.1:9000",
                                  "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "very-secret"})

    assert settings.storage_configured and settings.s3_region == "us-east-1"
    assert settings.storage_credentials() == {"aws_access_key_id": "AKIAEXAMPLE",
                                              "aws_secret_access_key": "very-secret"}
    assert "very-secret" not in repr(settings) and "AKIAEXAMPLE" not in repr(settings)


@pytest.mark.parametrize(("change", "named"), [
    ({"S3_BUCKET": "Not_A_Bucket"}, "S3_BUCKET"),
    ({"S3_REGION": "canada"}, "S3_REGION"),
    ({"S3_ENDPOINT_URL": "s3.local"}, "S3_ENDPOINT_URL"),
    ({"AWS_ACCESS_KEY_ID": "only-half"}, "AWS_SECRET_ACCESS_KEY"),
    ({"MAX_UPLOAD_BYTES_DIRECT": "1"}, "MAX_UPLOAD_BYTES_DIRECT"),
    ({"RETENTION_DAYS": "0"}, "RETENTION_DAYS"),
    ({"MAX_BATCH_ROWS_DIRECT": "many"}, "MAX_BATCH_ROWS_DIRECT"),
])
def test_a_malformed_storage_variable_fails_with_its_name(change, named):
    with pytest.raises(ConfigError, match=named):
        Settings.from_env({**BASE, **change})


def test_every_key_starts_with_its_owner_and_a_file_name_cannot_climb_out_of_it():
    assert upload_key("u1", "ab", "../../other/Été ✓.csv") == "u1/uploads/ab/other_Ete_.csv"
    assert source_key("u1", "b1", "xlsx") == "u1/batches/b1/source.xlsx"
    assert export_key("u1", "b1", "csv") == "u1/batches/b1/exports/results.csv"
    assert export_key("u1", "b1", "csv", partial=True) == "u1/batches/b1/exports/partial.csv"
    assert safe_file_name("...") == "file" and len(safe_file_name("x" * 500 + ".csv")) == 100
