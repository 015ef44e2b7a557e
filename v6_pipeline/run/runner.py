"""Run the reconciliation job for one window (or a range) from Python or a shell.

The same job, assets and in-process executor as the schedule's runs: `v6 reconcile`
and `v6 demo` are thin layers over `run_windows`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
import polars as pl
from dagster._core.storage.defs_state.base import set_defs_state_storage
from deltalake.exceptions import DeltaError

from v6_pipeline.defs.assets import IB_POOL
from v6_pipeline.defs.dead_runs import wait_for_pool, worker_tags
from v6_pipeline.defs.jobs import reconciliation_job
from v6_pipeline.defs.partitions import validate_key, window_start
from v6_pipeline.defs.resources import LakeResource
from v6_pipeline.defs.run_failures import instance_lost, step_failures
from v6_pipeline.lake.errors import LakeError
from v6_pipeline.lake.schemas import POSITION_DISCREPANCIES, polars_schema
from v6_pipeline.lake.snapshots import JudgmentLog
from v6_pipeline.run.instance import InstanceUnavailableError, serialize_pool_claims

EXIT_OK, EXIT_FAILED, EXIT_CRITICAL = 0, 1, 2


@dataclass(frozen=True)
class Outcome:
    """What a person needs to know about one reconciliation run."""

    keys: tuple[str, ...]
    run_id: str
    success: bool
    naked_check_passed: bool | None  # None: no window judged (an earlier step failed)
    failure: str | None  # why the run failed, in the words of the step that failed
    discrepancies: pl.DataFrame  # the windows' rows as stored, critical first
    lake_dir: str

    @property
    def exit_code(self) -> int:
        if self.naked_check_passed is False:
            return EXIT_CRITICAL
        return EXIT_OK if self.success else EXIT_FAILED


def resolve_job(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.JobDefinition:
    """`reconciliation_job` of `defs`, loaded against `instance`'s state, whatever
    instance a caller (a test, an embedding tool) entered last in this context."""
    with set_defs_state_storage(instance.defs_state_storage):
        return defs.resolve_job_def(reconciliation_job.name)


def run_windows(
    defs: dg.Definitions,
    first: str,
    last: str | None = None,
    *,
    instance: dg.DagsterInstance,
    log_level: str = "INFO",
    slot_wait_s: float = 120.0,
) -> Outcome:
    """Materialize windows `first`..`last` (one run) and report what happened.

    `log_level` is the console's; the instance's event log keeps everything. Runs whose
    process died are reaped first; a live run holding the IB pool slot is waited for at
    most `slot_wait_s` (`PoolBusyError` then names it).
    """
    job = resolve_job(defs, instance)
    windows = job.partitions_def
    assert isinstance(windows, dg.TimeWindowPartitionsDefinition)
    keys = (validate_key(first, windows), validate_key(last or first, windows))
    if window_start(keys[1]) < window_start(keys[0]):
        raise ValueError(f"the range {keys[0]}..{keys[1]} ends before it starts")
    # Whatever opened `instance`: its runs and the other processes' take the slot in turn.
    serialize_pool_claims(instance)
    wait_for_pool(instance, IB_POOL, job_name=job.name, deadline_s=slot_wait_s)
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    try:
        if keys[0] == keys[1]:
            result = job.execute_in_process(
                run_config=run_config,
                partition_key=keys[0],
                instance=instance,
                raise_on_error=False,
                tags=worker_tags(),
            )
        else:
            with _planned_once_per_asset():
                result = _run_range(job, run_config, instance, keys)
    except Exception as error:
        # The instance's database went away mid-run: Dagster raises out of the run.
        lost = instance_lost(error, keys)
        if lost is None:
            raise
        raise InstanceUnavailableError(lost) from error
    failures = [f.message for f in step_failures(result.all_events)]
    lake_resource = defs.resources["lake"]
    assert isinstance(lake_resource, LakeResource)
    keys_in_range = windows.get_partition_keys_in_range(dg.PartitionKeyRange(*keys))
    # Resolves EnvVar settings, in a `with`: a resource initialized outside a run opens an
    # ephemeral Dagster instance, and the caller's instance context is back once that is
    # closed. Left to the garbage collector, it would close later, inside another instance,
    # and put back this one's (v6_pipeline_tests/run/test_instance_context.py).
    with lake_resource.process_config_and_initialize_cm() as lake:
        lake_dir = lake.lake_dir
        starts = [window_start(key) for key in keys_in_range]
        try:
            found = lake.get_lake().read_discrepancies_of(window_starts=starts)
            # The verdicts this run recorded, live or past (the checks state only now).
            judged = JudgmentLog(lake_dir).read(starts).values()
            naked = [j.naked_count == 0 for j in judged if j and j.run_id == result.run_id]
        except (LakeError, DeltaError, OSError, pl.exceptions.PolarsError) as exc:
            # The run already failed on it and says why; the outcome still tells the story.
            if not failures:
                failures.append(str(exc))
            found = pl.DataFrame(schema=polars_schema(POSITION_DISCREPANCIES))
            naked = []
    found = found.sort(
        [pl.col("severity") == "critical", "window_start", "type", "account", "conid"],
        descending=[True, False, False, False, False],
    )
    return Outcome(
        keys=keys,
        run_id=result.run_id,
        success=result.success,
        naked_check_passed=all(naked) if naked else None,
        failure=failures[0] if failures else None,
        discrepancies=found,
        lake_dir=lake_dir,
    )


def _run_range(
    job: dg.JobDefinition,
    run_config: dict,
    instance: dg.DagsterInstance,
    keys: tuple[str, str],
) -> dg.ExecuteInProcessResult:
    return job.execute_in_process(
        run_config=run_config,
        instance=instance,
        raise_on_error=False,
        tags={
            **worker_tags(),
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[1],
        },
    )


# Dagster's own switch, read when a run is created: a range run then plans each asset once
# (its windows as one subset) instead of once per window per asset: 861 fewer stored
# events a day (docs/benchmarks.md). Its cost: a range run that fails does not mark its
# windows failed in the partition bar; its failure names them.
PLANNED_SUBSET = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


@contextmanager
def _planned_once_per_asset() -> Iterator[None]:
    """Set `PLANNED_SUBSET` for this process while a range run is created, unless the
    environment says otherwise."""
    if PLANNED_SUBSET in os.environ:
        yield
        return
    os.environ[PLANNED_SUBSET] = "1"
    try:
        yield
    finally:
        os.environ.pop(PLANNED_SUBSET, None)
