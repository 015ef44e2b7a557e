"""The object-store settings and failures, as data: which options each library gets, and
which sentence each error an object store gives becomes (texts as delta-rs, polars and
pyarrow word them; the S3 tests in v6_pipeline_tests/production meet them for real)."""

from __future__ import annotations

import os

import pytest

from v6_pipeline.lake.errors import LakeSchemaError, LakeStorageError
from v6_pipeline.lake.storage import (
    SETTINGS,
    diagnose,
    failure,
    reported,
    s3_options,
    storage_options,
)

LAKE = "s3://books/v6/lake"
ENDPOINT = "http://minio.internal:9000"
FULL = {
    "AWS_ENDPOINT_URL": ENDPOINT,
    "AWS_ACCESS_KEY_ID": "AKIA1",
    "AWS_SECRET_ACCESS_KEY": "s3cret",
    "AWS_SESSION_TOKEN": "tok",
    "AWS_REGION": "eu-west-1",
}


@pytest.mark.parametrize("uri", ["/srv/lake", "data/lake", "file:///srv/lake", "gs://b/lake"])
def test_no_options_off_s3(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FULL.items():
        monkeypatch.setenv(name, value)
    assert storage_options(uri) is None


@pytest.mark.parametrize("uri", [LAKE, "s3a://books/v6/lake"])
def test_s3_passes_every_setting_that_is_set(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FULL.items():
        monkeypatch.setenv(name, value)
    assert storage_options(uri) == {**FULL, "AWS_ALLOW_HTTP": "true"}


def test_blank_settings_are_unset_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """As Compose passes an unset variable: the libraries must not read "" either."""
    for name in SETTINGS:
        monkeypatch.setenv(name, " ")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert storage_options(LAKE) == {"AWS_REGION": "eu-west-1"}
    assert [name for name in SETTINGS if name in os.environ] == ["AWS_REGION"]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {}),  # AWS itself: the libraries' own credential chain
        ({"AWS_ACCESS_KEY_ID": " ", "AWS_REGION": ""}, {}),  # blank is unset
        ({"AWS_DEFAULT_REGION": "us-west-2"}, {"AWS_REGION": "us-west-2"}),
        (
            {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-west-2"},
            {"AWS_REGION": "eu-west-1"},
        ),
        (
            {"AWS_ENDPOINT_URL": "https://s3.internal"},
            {"AWS_ENDPOINT_URL": "https://s3.internal"},
        ),
        (
            {"AWS_ENDPOINT_URL": "HTTP://s3.internal"},
            {"AWS_ENDPOINT_URL": "HTTP://s3.internal", "AWS_ALLOW_HTTP": "true"},
        ),
        (  # the operator's own word wins
            {"AWS_ENDPOINT_URL": ENDPOINT, "AWS_ALLOW_HTTP": "false"},
            {"AWS_ENDPOINT_URL": ENDPOINT, "AWS_ALLOW_HTTP": "false"},
        ),
        ({"AWS_ALLOW_HTTP": "true"}, {"AWS_ALLOW_HTTP": "true"}),
    ],
)
def test_s3_options(environ: dict[str, str], expected: dict[str, str]) -> None:
    assert s3_options(environ) == expected


def _said(text: str) -> str:
    """An object store's answer as object_store prints it (coloured arrows, XML body)."""
    return (
        "Kernel error -> Generic S3 error\n          \x1b[31m↳\x1b[0m Error performing GET "
        f"{ENDPOINT}/books/v6/lake/position_updates/_delta_log/_last_checkpoint - Server "
        f"returned non-2xx status code\n           \x1b[31m↳\x1b[0m {text}\n"
    )


def _xml(code: str, message: str) -> str:
    body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return f'403 Forbidden\n<?xml version="1.0"?>{body}'


REFUSED = _said(_xml("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist"))
NO_BUCKET = _said(_xml("NoSuchBucket", "The specified bucket does not exist"))
CLOSED = (
    "Generic S3 error\n  \x1b[31m↳\x1b[0m Error performing list request\n  \x1b[31m↳\x1b[0m "
    "HTTP error\n  \x1b[31m↳\x1b[0m error sending request\n  \x1b[31m↳\x1b[0m client error "
    "(Connect)\n  \x1b[31m↳\x1b[0m tcp connect error\n  \x1b[31m↳\x1b[0m Connection refused "
    "(os error 111)\n"
)


@pytest.mark.parametrize(
    ("text", "problem", "detail"),
    [
        (REFUSED, "credentials", "InvalidAccessKeyId: The AWS Access Key Id you provided"),
        (_said(_xml("SignatureDoesNotMatch", "")), "credentials", "SignatureDoesNotMatch"),
        (_said(_xml("AccessDenied", "Access Denied")), "credentials", "AccessDenied: Access"),
        (_said(_xml("ExpiredToken", "expired")), "credentials", "ExpiredToken: expired"),
        (_said("403 Forbidden"), "credentials", "403 Forbidden"),
        (NO_BUCKET, "bucket", "NoSuchBucket: The specified bucket does not exist"),
        (_said(_xml("SlowDown", "Reduce your rate")), "other", "SlowDown: Reduce your rate"),
        (CLOSED, "unreachable", "Connection refused (os error 111)"),
        ("... dns error\n ↳ failed to lookup address information", "unreachable", "failed to"),
        (  # pyarrow's S3 filesystem (curl)
            "When reading information for key 'x' in bucket 'books': AWS Error "
            "NETWORK_CONNECTION during HeadObject operation: curlCode: 7, Could not connect",
            "unreachable",
            "When reading information",
        ),
        ("Generic S3 error: something else", "other", "Generic S3 error: something else"),
    ],
)
def test_diagnose(text: str, problem: str, detail: str) -> None:
    found = diagnose(text)
    assert (found.problem, found.detail[: len(detail)]) == (problem, detail)
    assert "\x1b" not in found.detail
    assert "\n" not in found.detail


@pytest.mark.parametrize(
    ("error", "setting", "words"),
    [
        (OSError(CLOSED), "AWS_ENDPOINT_URL", ["cannot reach", ENDPOINT, "Connection refused"]),
        (OSError(REFUSED), "AWS_ACCESS_KEY_ID", ["refused the credentials", "bucket books"]),
        (PermissionError(REFUSED), "AWS_ACCESS_KEY_ID", ["AWS_SECRET_ACCESS_KEY"]),
        (OSError(NO_BUCKET), "V6_LAKE_DIR", ["the bucket books of V6_LAKE_DIR=" + LAKE]),
        (OSError("Generic S3 error: boom"), "V6_LAKE_DIR", ["failed (Generic S3 error: boom)"]),
        (RuntimeError(CLOSED), "AWS_ENDPOINT_URL", ["cannot reach"]),  # by its words
    ],
)
def test_failure_names_the_setting(error: Exception, setting: str, words: list[str]) -> None:
    translated = failure(LAKE, error, {"AWS_ENDPOINT_URL": ENDPOINT})
    assert isinstance(translated, LakeStorageError)
    assert translated.setting == setting
    assert setting in str(translated)
    for word in words:
        assert word in str(translated)


def test_failure_without_an_endpoint_says_aws() -> None:
    translated = failure(LAKE, OSError(CLOSED), {})
    assert translated is not None
    assert "at AWS S3 (AWS_ENDPOINT_URL is not set)" in str(translated)


@pytest.mark.parametrize(
    ("lake_dir", "error"),
    [
        ("/srv/lake", OSError(CLOSED)),  # a local lake's errors are its own
        (LAKE, ValueError("a bad predicate")),  # not about storage
        (LAKE, LakeSchemaError(LAKE, "conid", "is missing")),  # already a sentence
    ],
)
def test_other_errors_are_left_alone(lake_dir: str, error: Exception) -> None:
    assert failure(lake_dir, error, {}) is None
    with pytest.raises(type(error)), reported(lake_dir):
        raise error


def test_reported_raises_the_sentence_from_the_error() -> None:
    cause = OSError(NO_BUCKET)
    with pytest.raises(LakeStorageError, match="does not exist") as caught, reported(LAKE):
        raise cause
    assert caught.value.__cause__ is cause
    assert caught.value.problem == "bucket"
