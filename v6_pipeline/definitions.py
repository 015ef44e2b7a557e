"""The Dagster code location: `workspace.yaml` loads `defs` from here.

`defs` is built when Dagster loads the code location (`@dg.definitions`), not on
import: the settings are read and checked then, and a bad one is an error naming the
variable, shown in the UI.
"""

from collections.abc import Callable, Mapping
from datetime import datetime

import dagster as dg

from v6_pipeline.defs.assets import reconciliation_assets
from v6_pipeline.defs.jobs import lake_maintenance_job, reconciliation_job
from v6_pipeline.defs.partitions import partitions_start, window_partitions
from v6_pipeline.defs.resources import (
    AlertsResource,
    LakeResource,
    check_settings,
    resources_from_env,
)
from v6_pipeline.defs.retention import RunRetentionResource
from v6_pipeline.defs.schedules import lake_maintenance_schedule, reconciliation_schedule
from v6_pipeline.defs.sensors import ALERT_SENSORS


def build_defs(
    resources: Mapping[str, dg.ConfigurableResource], *, start: datetime | None = None
) -> dg.Definitions:
    """The project's definitions bound to `resources` (tests bind their own), checked;
    the first window is `start`, else `V6_PARTITIONS_START`'s, else the first window
    the lake of `resources` holds a snapshot of (`defs/partitions.py`)."""
    # Retention and alerts have defaults for callers that bind only the pipeline's own.
    resources = {"retention": RunRetentionResource(), "alerts": AlertsResource(), **resources}
    check_settings(resources)
    windows = window_partitions(start or partitions_start(first_run=_first_run(resources)))
    return dg.Definitions(
        assets=reconciliation_assets(windows),
        jobs=[reconciliation_job, lake_maintenance_job],
        schedules=[reconciliation_schedule, lake_maintenance_schedule],
        sensors=ALERT_SENSORS,
        resources=dict(resources),
        # Also for `dagster asset materialize` and UI launches outside the job.
        executor=dg.in_process_executor,
    )


def _first_run(
    resources: Mapping[str, dg.ConfigurableResource],
) -> Callable[[], datetime | None]:
    def read() -> datetime | None:
        lake = resources.get("lake")
        if not isinstance(lake, LakeResource):
            return None
        with lake.process_config_and_initialize_cm() as resolved:  # closes its instance
            return resolved.get_lake().first_snapshot_window()

    return read


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs({**resources_from_env(), "retention": RunRetentionResource.from_env()})
