"""The Dagster code location: `workspace.yaml` loads `defs` from here."""

from collections.abc import Mapping

import dagster as dg

from v6_pipeline.defs.assets import (
    delta_latest_positions,
    ib_position_snapshot,
    position_discrepancies,
)
from v6_pipeline.defs.jobs import lake_maintenance_job, reconciliation_job
from v6_pipeline.defs.resources import resources_from_env
from v6_pipeline.defs.schedules import lake_maintenance_schedule, reconciliation_schedule


def build_defs(resources: Mapping[str, dg.ConfigurableResource]) -> dg.Definitions:
    """The project's definitions bound to `resources` (tests bind their own)."""
    return dg.Definitions(
        assets=[ib_position_snapshot, delta_latest_positions, position_discrepancies],
        jobs=[reconciliation_job, lake_maintenance_job],
        schedules=[reconciliation_schedule, lake_maintenance_schedule],
        resources=dict(resources),
        # Also for `dagster asset materialize` and UI launches outside the job.
        executor=dg.in_process_executor,
    )


defs = build_defs(resources_from_env())
