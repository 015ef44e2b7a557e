"""A set-up `v6 doctor` finds healthy: the emulator, a lake with `position_updates` that
matches it and a heartbeating `v6 stream`, and a real Dagster instance whose daemon
heartbeats and whose schedule and sensors have just ticked (written as the daemon writes
them), so that one item at a time can be broken."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    ScheduleInstigatorData,
    SensorInstigatorData,
    TickData,
    TickStatus,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._daemon.types import DaemonHeartbeat

from v6_pipeline.doctor.instance import DAEMONS, INSTIGATORS
from v6_pipeline.lake import Lake
from v6_pipeline.run.instance import prepare_home
from v6_pipeline.stream.status import StreamStatus, write_status
from v6_pipeline_tests.support import DEMO


@dataclass
class Setup:
    lake_dir: Path
    home: Path
    env: dict[str, str]


def book_rows(now: datetime, *, accounts: dict[str, str] | None = None) -> pl.DataFrame:
    """`position_updates` rows holding what the demo portfolio holds (an account
    renamed per `accounts`)."""
    rows = [
        {
            "account": (accounts or {}).get(p.account, p.account),
            "conid": p.conid,
            "symbol": p.symbol,
            "sec_type": p.sec_type,
            "right": p.right or None,
            "strike": p.strike or None,
            "expiry": p.expiry or None,
            "multiplier": p.multiplier or None,
            "currency": p.currency or None,
            "position": float(p.position),
            "avg_cost": p.avg_cost,
            "timestamp": now - timedelta(hours=1),
        }
        for p in DEMO.positions
    ]
    from v6_pipeline.lake.schemas import POSITION_UPDATES, polars_schema

    return pl.DataFrame(rows, schema=polars_schema(POSITION_UPDATES))


def heartbeat(lake_dir: Path, at: datetime) -> None:
    write_status(
        lake_dir,
        StreamStatus(
            stream_id="doctor-test",
            heartbeat_at=at,
            connected=True,
            since=at - timedelta(minutes=5),
            last_event_at=at - timedelta(minutes=1),
            last_write_at=at - timedelta(minutes=1),
            rows_written=3,
            events=3,
            pending=0,
            reconnects=0,
            last_error=None,
            started_at=at - timedelta(minutes=5),
            hostname=socket.gethostname(),
            pid=os.getpid(),
        ),
    )


def origin(name: str) -> RemoteInstigatorOrigin:
    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="v6_pipeline.definitions", attribute="defs")
    )
    return RemoteInstigatorOrigin(RemoteRepositoryOrigin(location, "__repository__"), name)


def ticked(
    instance: dg.DagsterInstance,
    name: str,
    *,
    status: InstigatorStatus = InstigatorStatus.DECLARED_IN_CODE,
    age_s: float = 5.0,
) -> None:
    """`name`'s state and one tick `age_s` ago, as the daemon records them."""
    kind = InstigatorType.SCHEDULE if name.endswith("schedule") else InstigatorType.SENSOR
    data = (
        ScheduleInstigatorData("*/5 * * * *", start_timestamp=time.time() - 600)
        if kind is InstigatorType.SCHEDULE
        else SensorInstigatorData(last_tick_timestamp=time.time() - age_s)
    )
    state = InstigatorState(origin(name), kind, status, data)
    if instance.get_instigator_state(state.instigator_origin_id, state.selector_id):
        instance.update_instigator_state(state)
    else:
        instance.add_instigator_state(state)
    instance.create_tick(
        TickData(
            instigator_origin_id=state.instigator_origin_id,
            instigator_name=name,
            instigator_type=kind,
            status=TickStatus.SKIPPED,
            timestamp=time.time() - age_s,
            selector_id=state.selector_id,
        )
    )


def daemon_beats(instance: dg.DagsterInstance, *, age_s: float = 5.0) -> None:
    for daemon in DAEMONS:
        instance.add_daemon_heartbeat(
            DaemonHeartbeat(time.time() - age_s, daemon, "doctor-test", None)
        )


def healthy(tmp_path: Path, gateway_port: int, *, client_id: int = 606) -> Setup:
    now = datetime.now(UTC)
    lake_dir = tmp_path / "lake"
    lake = Lake(lake_dir)
    lake.create_position_updates()
    lake.append_position_updates(book_rows(now))
    lake.read_latest(as_of=now)  # builds the read checkpoint, as a run does
    heartbeat(lake_dir, now)
    home = prepare_home(tmp_path / "dagster_home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        daemon_beats(instance)
        for name in INSTIGATORS:
            ticked(instance, name)
    env = {
        "V6_IB_HOST": "127.0.0.1",
        "V6_IB_PORT": str(gateway_port),
        "V6_IB_CLIENT_ID": str(client_id),
        "V6_LAKE_DIR": str(lake_dir),
        "DAGSTER_HOME": str(home),
        "V6_ALERT_URLS": "",
    }
    return Setup(lake_dir, home, env)


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root`: (size, mtime_ns), to see that nothing was written."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
