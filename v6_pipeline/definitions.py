"""The Dagster code location: `workspace.yaml` loads `defs` from here.

`defs` is built when Dagster loads the code location (`@dg.definitions`), not on
import: the settings are read and checked then, and a bad one is an error naming the
variable, shown in the UI.
"""

from collections.abc import Mapping

import dagster as dg

from v6_pipeline.defs.assets import (
    delta_latest_positions,
    ib_position_snapshot,
    position_discrepancies,
)
from v6_pipeline.defs.jobs import lake_maintenance_job, reconciliation_job
from v6_pipeline.defs.resources import check_settings, resources_from_env
from v6_pipeline.defs.schedules import lake_maintenance_schedule, reconciliation_schedule


def build_defs(resources: Mapping[str, dg.ConfigurableResource]) -> dg.Definitions:
    """The project's definitions bound to `resources` (tests bind their own), checked."""
    check_settings(resources)
    return dg.Definitions(
        assets=[ib_position_snapshot, delta_latest_positions, position_discrepancies],
        jobs=[reconciliation_job, lake_maintenance_job],
        schedules=[reconciliation_schedule, lake_maintenance_schedule],
        resources=dict(resources),
        # Also for `dagster asset materialize` and UI launches outside the job.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs(resources_from_env())
