"""The Dagster items: the instance reachable (SQLite or PostgreSQL), the daemon
heartbeating, the schedule and the sensors running. Read only: no home is created, no
run launched, no state changed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
from dagster._core.scheduler.instigation import InstigatorStatus

from v6_pipeline.doctor.bounded import within
from v6_pipeline.doctor.report import Line, fail, ok, skip

# The daemons the schedule and the sensors need, and how stale a heartbeat may be (the
# daemon writes one every ~30 s).
DAEMONS = ("SCHEDULER", "SENSOR")
HEARTBEAT_TOLERANCE_S = 120.0
# Each instigator, and how long it may go without a tick while running (its interval,
# plus a minute of slack).
INSTIGATORS: dict[str, float] = {
    "reconciliation_schedule": 5 * 60 + 60,
    "reconciliation_failure_sensor": 30 + 60,
    "discrepancy_alert_sensor": 30 + 60,
    "reconciliation_silence_sensor": 30 + 60,
}
START_DAEMON = (
    "start it with the same DAGSTER_HOME: `dg dev` (UI and daemon) or `dagster-daemon run`"
)


def open_instance(*, timeout_s: float) -> tuple[dg.DagsterInstance | None, Line]:
    item = "Dagster instance"
    raw = os.environ.get("DAGSTER_HOME", "").strip()
    if not raw:
        return None, fail(
            item,
            "DAGSTER_HOME is not set: the schedule and sensors keep their state in an "
            "instance — export DAGSTER_HOME=/path/to/.dagster_home (the folder `dg dev` and "
            "`dagster-daemon run` use; README, Running it in Dagster)",
        )
    home = Path(raw).expanduser()
    if not home.is_dir():
        return None, fail(
            item,
            f"DAGSTER_HOME={raw} is not a folder: create it and copy dagster.yaml into it "
            "(README, Running it in Dagster), or point DAGSTER_HOME at the instance's home",
        )

    def load() -> tuple[dg.DagsterInstance, int]:
        instance = dg.DagsterInstance.from_config(str(home))
        return instance, len(instance.get_run_records(limit=1))

    try:
        instance, _ = within(timeout_s, load, what="the Dagster instance's database")
    except Exception as exc:
        said = " ".join(str(exc).split())[:300]
        return None, fail(
            item,
            f"cannot open the instance at {home} ({type(exc).__name__}: {said}): check "
            "dagster.yaml there, and for PostgreSQL that the server is up and DAGSTER_PG_URL "
            "(user, password, host, port, database) is right",
        )
    kind = "PostgreSQL" if "postgres" in type(instance.run_storage).__name__.lower() else "SQLite"
    return instance, ok(item, f"{home} ({kind})")


def daemon_line(instance: dg.DagsterInstance | None, *, timeout_s: float) -> Line:
    item = "dagster-daemon"
    if instance is None:
        return skip(item, "no Dagster instance")
    beats = within(timeout_s, instance.get_daemon_heartbeats, what="the daemon heartbeats")
    now = time.time()
    stale = []
    for daemon in DAEMONS:
        beat = beats.get(daemon)
        if beat is None:
            stale.append(f"{daemon.lower()}: never")
        elif now - beat.timestamp > HEARTBEAT_TOLERANCE_S:
            stale.append(f"{daemon.lower()}: {now - beat.timestamp:.0f} s ago")
    if stale:
        return fail(
            item,
            f"not heartbeating in this instance ({', '.join(stale)}): the schedule and "
            f"sensors do not run — {START_DAEMON}",
        )
    ages = ", ".join(f"{d.lower()} {now - beats[d].timestamp:.0f} s ago" for d in DAEMONS)
    return ok(item, f"heartbeating ({ages})")


def instigator_lines(instance: dg.DagsterInstance | None, *, timeout_s: float) -> list[Line]:
    if instance is None:
        return [skip(name, "no Dagster instance") for name in INSTIGATORS]
    states = within(timeout_s, instance.all_instigator_state, what="the instigator states")
    by_name = {state.instigator_name: state for state in states}
    lines = []
    now = time.time()
    for name, allowed_s in INSTIGATORS.items():
        kind = "schedule" if name.endswith("schedule") else "sensor"
        state = by_name.get(name)
        if state is None:
            lines.append(
                fail(
                    name,
                    f"never ticked in this instance: {START_DAEMON} (it loads workspace.yaml; "
                    f"the {kind} runs by default)",
                )
            )
            continue
        if state.status == InstigatorStatus.STOPPED:
            lines.append(
                fail(
                    name,
                    f"stopped: start it in the UI (Automation → {name} → toggle on) or with "
                    f"`dagster {kind} start {name}`",
                )
            )
            continue
        ticks = within(
            timeout_s,
            lambda s=state: instance.get_ticks(s.instigator_origin_id, s.selector_id, limit=1),
            what="the newest tick",
        )
        if not ticks:
            lines.append(fail(name, f"running but has never ticked: {START_DAEMON}"))
            continue
        age = now - ticks[0].timestamp
        if age > allowed_s:
            lines.append(
                fail(name, f"running, but its newest tick is {age:.0f} s old: {START_DAEMON}")
            )
            continue
        lines.append(ok(name, f"running, newest tick {age:.0f} s ago ({ticks[0].status.value})"))
    return lines
