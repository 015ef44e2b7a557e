"""`v6 stream`'s settings: the pipeline's IB and lake settings, plus the stream's own.

The gateway's address, the snapshot timeout (`V6_IB_TIMEOUT_S`), the lake and the
default account are the pipeline's own `Setting`s of `v6_pipeline/settings.py`, read
the way its resources read them, so each has one default. The stream's own variables
are `Setting`s there too (one default, one bound each, shared with the pipeline's
`position_stream_is_alive` check):

| variable | default | meaning |
|---|---|---|
| `V6_STREAM_CLIENT_ID` | 607 | the stream's API client id (not the pipeline's) |
| `V6_STREAM_FLUSH_S` | 1 | the longest a change waits for its commit (at most a day) |
| `V6_STREAM_HEARTBEAT_S` | 30 | how often a `stream_status` row is written (at most a day) |
| `V6_STREAM_DEAD_AFTER_S` | 120 | the liveness check fails past this (at most a day); |
| | | empty disables it |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from v6_pipeline.settings import (
    ACCOUNTS,
    DEFAULT_ACCOUNT,
    IB_CLIENT_ID,
    IB_HOST,
    IB_PORT,
    IB_TIMEOUT_S,
    LAKE_DIR,
    STREAM_CLIENT_ID,
    STREAM_DEAD_AFTER_S,
    STREAM_FLUSH_S,
    STREAM_HEARTBEAT_S,
    Setting,
    SettingError,
)

CLIENT_ID = STREAM_CLIENT_ID
FLUSH_S = STREAM_FLUSH_S
HEARTBEAT_S = STREAM_HEARTBEAT_S
DEAD_AFTER_S = STREAM_DEAD_AFTER_S


@dataclass(frozen=True, slots=True)
class StreamSettings:
    host: str
    port: int
    client_id: int
    timeout_s: float  # for each (re)connect snapshot, retries included
    lake_dir: str
    default_account: str | None
    flush_s: float
    heartbeat_s: float

    @property
    def stream_id(self) -> str:
        """Names the stream in `stream_status`: which gateway, which client id."""
        return f"{self.client_id}@{self.host}:{self.port}"


def stream_settings() -> StreamSettings:
    """The settings from the environment; ValueError (a `SettingError`, one sentence)
    names the first bad variable."""
    environ = os.environ
    host, port = IB_HOST.read(environ), IB_PORT.read(environ)
    ib_client_id, timeout_s = IB_CLIENT_ID.read(environ), IB_TIMEOUT_S.read(environ)
    ACCOUNTS.read(environ)  # not the stream's, but checked as the pipeline checks it
    lake_dir, default_account = LAKE_DIR.read(environ), DEFAULT_ACCOUNT.read(environ)
    client_id = stream_client_id(os.environ)
    if client_id == ib_client_id:
        raise SettingError(
            CLIENT_ID.variable,
            f"V6_STREAM_CLIENT_ID={client_id} is the pipeline's client id (V6_IB_CLIENT_ID), "
            "and the gateway would refuse one of them (error 326): give the stream its own id",
        )
    heartbeat_s = seconds(os.environ, HEARTBEAT_S)
    dead_after = stream_dead_after(os.environ)
    if dead_after is not None and heartbeat_s >= dead_after.total_seconds():
        raise SettingError(
            HEARTBEAT_S.variable,
            f"V6_STREAM_HEARTBEAT_S={heartbeat_s:g} is not below V6_STREAM_DEAD_AFTER_S="
            f"{dead_after.total_seconds():g}, so the liveness check would fail between two "
            "heartbeats of a healthy stream: lower the first or raise the second",
        )
    return StreamSettings(
        host=host,
        port=port,
        client_id=client_id,
        timeout_s=timeout_s,
        lake_dir=lake_dir,
        default_account=default_account,
        flush_s=seconds(os.environ, FLUSH_S),
        heartbeat_s=heartbeat_s,
    )


def stream_client_id(environ: Mapping[str, str]) -> int:
    """`V6_STREAM_CLIENT_ID` from `environ` (unset or empty: the default)."""
    return CLIENT_ID.read(environ)


def stream_dead_after(environ: Mapping[str, str]) -> timedelta | None:
    """`V6_STREAM_DEAD_AFTER_S` for the liveness check; None when set empty (disabled).

    Unset means the default; set to an empty string (or blanks) means off.
    """
    value = DEAD_AFTER_S.read(environ)
    return None if value is None else timedelta(seconds=value)


def seconds(environ: Mapping[str, str], setting: Setting[float]) -> float:
    """`setting`'s seconds from `environ` (unset or empty: the default): positive, finite,
    at most its bound (a day for the stream's own)."""
    return setting.read(environ)
