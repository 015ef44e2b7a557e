"""Reaching the lake's storage: the options delta-rs, polars and pyarrow need for an `s3://`
lake, and the sentence an operator acts on when the object store cannot be used.

The settings are AWS's own variables, read each time a table is opened (a rotated key is
picked up by the next run): `AWS_ENDPOINT_URL` (an S3-compatible server such as MinIO
or Ceph; unset for AWS), `AWS_REGION` (or `AWS_DEFAULT_REGION`), `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP` (implied by an `http://`
endpoint). Unset keys fall back to the libraries' own chain (instance profile, web
identity). Concurrent writers need no lock service: delta-rs commits with S3's
conditional put (`If-None-Match`), so of two commits of the same version one fails and
is retried on top of the other.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from pyarrow import fs

from v6_pipeline.lake.errors import LakeError, LakeStorageError, StorageProblem
from v6_pipeline.lake.paths import is_local

S3_SCHEMES = ("s3://", "s3a://")
# Passed on under their own names: delta-rs and polars (object_store) read these keys.
_PASSED = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_REGION = ("AWS_REGION", "AWS_DEFAULT_REGION")  # the first set wins
# Every setting of an S3 lake (docs/production.md; the deploy files forward them).
SETTINGS = (
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ALLOW_HTTP",
)

# S3's error codes (the same on AWS, MinIO, Ceph, moto) for a key the store refuses.
_CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "InvalidToken",
        "ExpiredToken",
        "TokenRefreshRequired",
        "AllAccessDisabled",
    }
)
_CODE = re.compile(r"<Code>([^<]+)</Code>")
_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")
# How the HTTP clients (object_store's, pyarrow's curl) say the server never answered.
_UNREACHABLE = re.compile(
    r"error sending request|connect error|dns error|failed to lookup|timed out|"
    r"connection refused|could not connect|NETWORK_CONNECTION|could not resolve",
    re.IGNORECASE,
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def is_s3(uri: str) -> bool:
    return uri.startswith(S3_SCHEMES)


def storage_options(uri: str) -> dict[str, str] | None:
    """What delta-rs and polars need to reach `uri`: the `AWS_*` settings that are set, for
    an `s3://` URI; None for a local path (and for other stores, which their libraries
    configure from their own variables).

    A blank setting is unset, and is removed from the environment: Compose and Dagster's
    Docker run launcher pass an unset variable on as an empty one, and the libraries,
    which read the environment too, would take it for a value (an endpoint named "" makes
    delta-rs panic).
    """
    if not is_s3(uri):
        return None
    for name in SETTINGS:
        if name in os.environ and not os.environ[name].strip():
            del os.environ[name]
    return s3_options(os.environ)


def s3_options(environ: Mapping[str, str]) -> dict[str, str]:
    """The storage options of an `s3://` lake from the settings in `environ`."""
    options = {key: value for key in _PASSED if (value := environ.get(key, "").strip())}
    if region := next((v for k in _REGION if (v := environ.get(k, "").strip())), None):
        options["AWS_REGION"] = region
    allow_http = environ.get("AWS_ALLOW_HTTP", "").strip()
    if allow_http:
        options["AWS_ALLOW_HTTP"] = allow_http
    elif options.get("AWS_ENDPOINT_URL", "").lower().startswith("http://"):
        options["AWS_ALLOW_HTTP"] = "true"  # the operator chose a plain-HTTP server
    return options


def filesystem(uri: str) -> tuple[fs.FileSystem, str]:
    """A pyarrow filesystem holding `uri`, and the path of `uri` in it."""
    if is_local(uri):
        return fs.LocalFileSystem(), os.path.abspath(uri.removeprefix("file://"))
    options = storage_options(uri)
    if options is None:
        return fs.FileSystem.from_uri(uri)
    keys = "AWS_ACCESS_KEY_ID" in options and "AWS_SECRET_ACCESS_KEY" in options
    store = fs.S3FileSystem(
        access_key=options["AWS_ACCESS_KEY_ID"] if keys else None,
        secret_key=options["AWS_SECRET_ACCESS_KEY"] if keys else None,
        session_token=options.get("AWS_SESSION_TOKEN") if keys else None,
        region=options.get("AWS_REGION"),
        endpoint_override=options.get("AWS_ENDPOINT_URL"),  # its scheme picks http or https
    )
    return store, uri.split("://", 1)[1].rstrip("/")


@dataclass(frozen=True)
class Diagnosis:
    problem: StorageProblem
    detail: str  # what the store or the network said, on one line


def diagnose(text: str) -> Diagnosis:
    """What an error from delta-rs, polars or pyarrow says went wrong with the object store."""
    clean = _ANSI.sub("", text)
    code = _CODE.search(clean)
    said = _MESSAGE.search(clean)
    if code is not None:
        detail = code.group(1) + (f": {said.group(1)}" if said and said.group(1) else "")
        if code.group(1) in _CREDENTIAL_CODES:
            return Diagnosis("credentials", detail)
        if code.group(1) == "NoSuchBucket":
            return Diagnosis("bucket", detail)
        return Diagnosis("other", detail)
    lines = [line.strip(" ↳\t") for line in clean.splitlines() if line.strip(" ↳\t")]
    if _UNREACHABLE.search(clean):
        return Diagnosis("unreachable", lines[-1] if lines else clean)
    if re.search(r"\b403 Forbidden\b|ACCESS_DENIED", clean):
        return Diagnosis("credentials", "403 Forbidden")
    return Diagnosis("other", " ".join(lines)[:300])


def failure(
    lake_dir: str, error: BaseException, environ: Mapping[str, str] = os.environ
) -> LakeStorageError | None:
    """`error` as a sentence naming the setting to fix, when it is the object store under
    `lake_dir` failing; None for a local lake or an error that is not about storage."""
    if is_local(lake_dir) or isinstance(error, LakeError):
        return None
    found = diagnose(str(error))
    if found.problem == "other" and not isinstance(error, OSError):
        return None
    endpoint = environ.get("AWS_ENDPOINT_URL", "").strip()
    at = endpoint or "AWS S3 (AWS_ENDPOINT_URL is not set)"
    bucket = lake_dir.split("://", 1)[1].split("/", 1)[0]
    where = f"V6_LAKE_DIR={lake_dir}"
    if found.problem == "unreachable":
        return LakeStorageError(
            f"cannot reach the object store of {where} at {at} ({found.detail}): check "
            "AWS_ENDPOINT_URL and that the server is up and reachable from here",
            problem="unreachable",
            setting="AWS_ENDPOINT_URL",
        )
    if found.problem == "credentials":
        return LakeStorageError(
            f"the object store at {at} refused the credentials for bucket {bucket} "
            f"({found.detail}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
            f"AWS_SESSION_TOKEN for temporary credentials), and that the key may read and "
            f"write {lake_dir}",
            problem="credentials",
            setting="AWS_ACCESS_KEY_ID",
        )
    if found.problem == "bucket":
        return LakeStorageError(
            f"the bucket {bucket} of {where} does not exist at {at}: create it, or correct "
            "V6_LAKE_DIR (or AWS_ENDPOINT_URL, if it names the wrong server)",
            problem="bucket",
            setting="V6_LAKE_DIR",
        )
    return LakeStorageError(
        f"the object store of {where} at {at} failed ({found.detail}): check V6_LAKE_DIR "
        "and the AWS_* settings",
        problem="other",
        setting="V6_LAKE_DIR",
    )


@contextmanager
def reported(lake_dir: str) -> Iterator[None]:
    """Raise an object-store failure in the block as `LakeStorageError` (see `failure`)."""
    try:
        yield
    except Exception as error:
        translated = failure(lake_dir, error)
        if translated is None:
            raise
        raise translated from error
