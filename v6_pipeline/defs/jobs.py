"""Jobs: the 5-minute reconciliation, and the lake's daily maintenance."""

import dagster as dg

from v6_pipeline.defs.assets import GROUP
from v6_pipeline.defs.resources import LakeResource

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


@dg.job(
    description="Daily: compact small files and vacuum old ones in the Delta tables.",
    executor_def=dg.in_process_executor,
)
def lake_maintenance_job() -> None:
    maintain_lake()
