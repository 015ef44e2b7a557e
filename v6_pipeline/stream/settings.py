"""`v6 stream`'s settings: the pipeline's IB and lake settings, plus the stream's own.

The gateway's address, the snapshot timeout (`V6_IB_TIMEOUT_S`), the lake and the
default account are read through the pipeline's own resources, so each has one default.
The stream's own variables, each checked here with an error naming it:

| variable | default | meaning |
|---|---|---|
| `V6_STREAM_CLIENT_ID` | 607 | the stream's API client id (not the pipeline's) |
| `V6_STREAM_FLUSH_S` | 1 | the longest a change waits for its commit |
| `V6_STREAM_HEARTBEAT_S` | 30 | how often a `stream_status` row is written |
| `V6_STREAM_DEAD_AFTER_S` | 120 | the liveness check fails past this; empty disables it |
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

CLIENT_ID = ("V6_STREAM_CLIENT_ID", "607")
FLUSH_S = ("V6_STREAM_FLUSH_S", "1")
HEARTBEAT_S = ("V6_STREAM_HEARTBEAT_S", "30")
DEAD_AFTER_S = ("V6_STREAM_DEAD_AFTER_S", "120")

_MAX_SECONDS = 86400.0  # a flush or heartbeat a day apart is a typo


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
    """The settings from the environment; ValueError names the first bad variable."""
    # Dagster is imported only here: `v6 stream --help` and the pure modules stay light.
    from v6_pipeline.defs.resources import IBGatewayResource, LakeResource, check_settings

    ib_env, lake_env = IBGatewayResource.from_env(), LakeResource.from_env()
    check_settings({"ib": ib_env, "lake": lake_env})
    ib = ib_env.process_config_and_initialize()
    lake = lake_env.process_config_and_initialize()
    client_id = stream_client_id(os.environ)
    if client_id == ib.client_id:
        raise ValueError(
            f"V6_STREAM_CLIENT_ID={client_id} is the pipeline's client id (V6_IB_CLIENT_ID): "
            "the gateway would refuse one of them (error 326). Give the stream its own id."
        )
    heartbeat_s = seconds(os.environ, HEARTBEAT_S)
    dead_after = stream_dead_after(os.environ)
    if dead_after is not None and heartbeat_s >= dead_after.total_seconds():
        raise ValueError(
            f"V6_STREAM_HEARTBEAT_S={heartbeat_s:g} is not below V6_STREAM_DEAD_AFTER_S="
            f"{dead_after.total_seconds():g}: the liveness check would fail between two "
            "heartbeats of a healthy stream. Lower the first or raise the second."
        )
    return StreamSettings(
        host=ib.host,
        port=ib.port,
        client_id=client_id,
        timeout_s=ib.timeout(),
        lake_dir=lake.lake_dir,
        default_account=lake.default_account or None,
        flush_s=seconds(os.environ, FLUSH_S),
        heartbeat_s=heartbeat_s,
    )


def stream_client_id(environ: Mapping[str, str]) -> int:
    variable, raw = _raw(environ, CLIENT_ID)
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{variable}={raw!r} is not a whole number") from None
    if not 0 <= value < 2**31:
        raise ValueError(f"{variable}={value} must be between 0 and 2^31-1")
    return value


def stream_dead_after(environ: Mapping[str, str]) -> timedelta | None:
    """`V6_STREAM_DEAD_AFTER_S` for the liveness check; None when set empty (disabled).

    Unset means the default; set to an empty string (or blanks) means off.
    """
    raw = environ.get(DEAD_AFTER_S[0])
    if raw is not None and not raw.strip():
        return None
    return timedelta(seconds=seconds(environ, DEAD_AFTER_S))


def seconds(environ: Mapping[str, str], setting: tuple[str, str]) -> float:
    """A positive, finite number of seconds (at most a day) from `environ`, or the default."""
    variable, raw = _raw(environ, setting)
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{variable}={raw!r} is not a number of seconds") from None
    if not (math.isfinite(value) and 0 < value <= _MAX_SECONDS):
        raise ValueError(
            f"{variable}={raw!r} must be a number of seconds above 0 and at most a day"
        )
    return value


def _raw(environ: Mapping[str, str], setting: tuple[str, str]) -> tuple[str, str]:
    """(variable, its text or the default's)."""
    variable, default = setting
    return variable, environ.get(variable, "").strip() or default
