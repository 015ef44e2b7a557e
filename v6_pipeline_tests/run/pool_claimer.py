"""One of several processes that start together on a fresh DAGSTER_HOME and take the
`ib_gateway` pool slot the way a `v6 reconcile` run's executor does.

    python -m v6_pipeline_tests.run.pool_claimer HOME OUT_DIR N HOLD_S OPENER

It opens the instance as `v6 reconcile` does (OPENER `v6`: `open_instance`) or as the
daemon and its runs do (`dagster`: `DagsterInstance.from_config`), waits until all N
claimers are ready, claims the slot through Dagster's `InstanceConcurrencyContext` (what
the in-process executor calls for `ib_position_snapshot`), holds it HOLD_S seconds and
frees it. OUT_DIR/<run id> gets "start end holders assigned": when it held the slot, and
the runs the storage then said held the slot and had been assigned one (popped from
the pool's queue).

Dagster's claim is a check-then-act spread over several SQLite statements (is a slot
unassigned? then queue this step as assigned; which slot is free? then take it). To
make a race that is otherwise a matter of milliseconds near-certain, every read of the
slots table that a claim makes outside a write transaction (one that takes no lock) is
followed by a pause: the check and the act drift apart, as they do on a busy machine.
Whatever serializes the claims must hold across that gap.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine

from v6_pipeline.defs.assets import IB_POOL
from v6_pipeline.run.instance import open_instance

STEP = "ib_position_snapshot"
GAP_S = 0.3  # after each unlocked read of the slots table inside a claim
_in_claim = threading.local()


@event.listens_for(Engine, "after_cursor_execute")
def _widen(conn, cursor, statement, parameters, context, executemany) -> None:
    if not getattr(_in_claim, "on", False) or cursor.connection.in_transaction:
        return  # a read inside a write transaction holds SQLite's lock: no gap there
    text = statement.lstrip().upper()
    if text.startswith("SELECT") and "CONCURRENCY_SLOTS" in text:
        time.sleep(GAP_S)


def _barrier(out: Path, n: int, me: str, timeout_s: float = 120) -> None:
    (out / f"{me}.ready").touch()
    deadline = time.monotonic() + timeout_s
    while len(list(out.glob("*.ready"))) < n:
        if time.monotonic() > deadline:
            raise SystemExit("the other claimers never got ready")
        time.sleep(0.01)


def main(home: str, out_dir: str, n: str, hold_s: str, opener: str) -> None:
    import dagster as dg
    from dagster._core.execution.plan.instance_concurrency_context import (
        InstanceConcurrencyContext,
    )
    from dagster._core.utils import make_new_run_id

    out = Path(out_dir)
    instance = open_instance(home) if opener == "v6" else dg.DagsterInstance.from_config(home)
    run = instance.add_run(dg.DagsterRun(job_name="reconciliation_job", run_id=make_new_run_id()))
    _barrier(out, int(n), run.run_id)
    with InstanceConcurrencyContext(instance, run) as claims:
        while True:
            _in_claim.on = True
            try:
                claimed = claims.claim(IB_POOL, STEP)
            finally:
                _in_claim.on = False
            if claimed:
                break
            time.sleep(0.05)
        start = time.time()
        info = instance.event_log_storage.get_concurrency_info(IB_POOL)
        holders = [slot.run_id for slot in info.claimed_slots]
        assigned = [step.run_id for step in info.pending_steps if step.assigned_timestamp]
        time.sleep(float(hold_s))
        end = time.time()
        claims.free_step(STEP)
    (out / run.run_id).write_text(f"{start} {end} {','.join(holders)} {','.join(assigned)}\n")
    instance.dispose()


if __name__ == "__main__":
    main(*sys.argv[1:])
