"""Runs whose process died: found, marked failed, and their pool slots freed.

A run killed by SIGKILL, the OOM killer or a reboot never reports its end: it stays
STARTED and keeps its `ib_gateway` pool slot, and every later run would wait for that
slot forever (and the schedule would skip every window "while a run is in flight").
Dagster's run monitoring catches such runs by their maximum runtime where the daemon
runs (`dagster.yaml`); this module catches them at once, wherever the run's process
can be looked up: the run's host is this machine (a `v6/host` tag, or an instance whose
storage is local SQLite, which cannot be shared between machines).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEventType

log = logging.getLogger(__name__)

HOST_TAG = "v6/host"
PID_TAG = "v6/pid"
IN_FLIGHT = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
)
# A run has a process only once it is starting; a queued run is the coordinator's.
_HAS_PROCESS = (
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
)
# A process that started this long after its run did is another process on a reused pid.
_PID_REUSE_SLACK_S = 5.0


def worker_tags() -> dict[str, str]:
    """Tags naming this process as a run's worker, for runs launched from a shell."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


@dataclass(frozen=True)
class DeadRun:
    run_id: str
    pid: int
    host: str


def reap_dead_runs(instance: dg.DagsterInstance, job_name: str) -> list[DeadRun]:
    """Mark `job_name`'s runs whose process is gone as failed and free their pool slots."""
    reaped = []
    for record in instance.get_run_records(
        filters=dg.RunsFilter(job_name=job_name, statuses=list(_HAS_PROCESS))
    ):
        dead = _dead(instance, record)
        if dead is None:
            continue
        run = record.dagster_run
        message = (
            f"run {run.run_id} died without finishing (its process {dead.pid} on {dead.host} "
            "is gone: killed, out of memory or a reboot); its pool slot was freed"
        )
        log.warning(message)
        instance.report_run_failed(run, message)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append(dead)
    return reaped


def live_runs(instance: dg.DagsterInstance, job_name: str) -> list[dg.DagsterRun]:
    """`job_name`'s runs still in flight once the dead ones are reaped."""
    reap_dead_runs(instance, job_name)
    return list(
        instance.get_runs(filters=dg.RunsFilter(job_name=job_name, statuses=list(IN_FLIGHT)))
    )


class PoolBusyError(RuntimeError):
    """A live run held the pool slot past the deadline."""


def wait_for_pool(
    instance: dg.DagsterInstance, pool: str, *, job_name: str, deadline_s: float
) -> None:
    """Return once `pool` has a free slot; dead holders are reaped on the way.

    Dagster's own wait for a slot has no deadline and says nothing: this one gives up
    after `deadline_s` naming who holds the slot.
    """
    deadline = time.monotonic() + deadline_s
    while True:
        reap_dead_runs(instance, job_name)
        info = instance.event_log_storage.get_concurrency_info(pool)
        limit = info.limit if info.limit is not None else info.slot_count
        if not limit or len(info.claimed_slots) < limit:
            return
        if time.monotonic() >= deadline:
            raise PoolBusyError(_busy_sentence(instance, pool, info.claimed_slots, deadline_s))
        time.sleep(0.5)


def _busy_sentence(instance: dg.DagsterInstance, pool: str, claimed: list, waited: float) -> str:
    holders = []
    for slot in claimed:
        record = next(iter(instance.get_run_records(dg.RunsFilter(run_ids=[slot.run_id]))), None)
        status = record.dagster_run.status.value if record else "unknown"
        holders.append(f"run {slot.run_id} (step {slot.step_key}, {status})")
    return (
        f"waited {waited:g} s for the {pool!r} pool slot, held by {', '.join(holders)}. If "
        "that run is stuck, terminate it in the Dagster UI (its run page), which frees the "
        "slot; `dagster instance concurrency get` shows who holds what (docs/operations.md)."
    )


def _dead(instance: dg.DagsterInstance, record: dg.RunRecord) -> DeadRun | None:
    run = record.dagster_run
    host = run.tags.get(HOST_TAG)
    if host is None and not _single_machine(instance):
        return None  # its process may be on another machine: run monitoring's job
    host = host or socket.gethostname()
    if host != socket.gethostname():
        return None
    pid = _pid_of(instance, run)
    if pid is None:
        return None  # not started far enough to tell; run monitoring's start timeout
    started = record.start_time or record.create_timestamp.timestamp()
    return None if _alive(pid, started) else DeadRun(run.run_id, pid, host)


def _single_machine(instance: dg.DagsterInstance) -> bool:
    return "sqlite" in type(instance.run_storage).__name__.lower()


def _pid_of(instance: dg.DagsterInstance, run: dg.DagsterRun) -> int | None:
    if PID_TAG in run.tags:
        return int(run.tags[PID_TAG])
    # A launched run's worker emits RUN_START (and its steps' events) itself.
    for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_START):
        if entry.dagster_event is not None and entry.dagster_event.pid is not None:
            return entry.dagster_event.pid
    return None


def _alive(pid: int, run_started: float) -> bool:
    if Path("/proc/self/stat").exists():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return False
        if fields[0] in ("Z", "X"):  # a zombie has finished; only its exit status is left
            return False
        return _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK") <= (
            run_started + _PID_REUSE_SLACK_S
        )
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return time.time() - time.monotonic()
