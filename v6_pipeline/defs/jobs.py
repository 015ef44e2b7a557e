"""Jobs: the 5-minute reconciliation, and the daily maintenance of the lake and of the
Dagster instance (run retention)."""

import dagster as dg

from v6_pipeline.defs.assets import GROUP
from v6_pipeline.defs.resources import LakeResource
from v6_pipeline.defs.retention import run_retention_op

# In process: the default multiprocess executor re-imports the code for every step
# (~12 s a run here, against ~3 s), and the three steps run one after another anyway.
reconciliation_job = dg.define_asset_job(
    "reconciliation_job",
    selection=dg.AssetSelection.groups(GROUP),
    executor_def=dg.in_process_executor,
    # A live window takes seconds and a week's backfill about a minute: a run still going
    # after 15 minutes is wedged, and run monitoring fails it (dagster.yaml).
    tags={"dagster/max_runtime": "900"},
    description=(
        "Snapshot IB, read the Delta latest positions as of the snapshot, and write the "
        "window's discrepancies; fails when a NAKED_POSITION exists."
    ),
)


@dg.op(description="Compact and vacuum every project table; rebuild the read checkpoint.")
def maintain_lake(context: dg.OpExecutionContext, lake: LakeResource) -> None:
    for done in lake.get_lake().maintain():
        context.log.info(str(done))


prune_old_runs = run_retention_op(reconciliation_job.name)


@dg.job(
    description=(
        "Daily: compact small files and vacuum old ones in the Delta tables; delete "
        "reconciliation runs past V6_RUN_RETENTION_DAYS / V6_FAILED_RUN_RETENTION_DAYS "
        "from the Dagster instance."
    ),
    executor_def=dg.in_process_executor,
)
def lake_maintenance_job() -> None:
    maintain_lake()
    prune_old_runs()
