"""Compaction and vacuum: for an operator (`v6 lake maintain`) and a daily schedule.

Appends and per-window overwrites leave many small files; compaction rewrites them into
few (per partition), vacuum deletes files no current version needs once they are older
than the retention, and a Delta log checkpoint is written so that opening the table reads
no long tail of commits (tables created elsewhere get the project's `PROPERTIES`, so every
writer checkpoints from then on). Compacting `position_updates` invalidates
`read_latest`'s checkpoint: the next read rebuilds it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from deltalake import DeltaTable

from v6_pipeline.lake.schemas import WINDOW_DATE
from v6_pipeline.lake.tables import PROPERTIES, try_open

# Delta's own default: readers slower than this may miss files a vacuum deleted.
DEFAULT_RETENTION_HOURS = 168


@dataclass(frozen=True)
class TableMaintenance:
    table_uri: str
    files_removed: int  # by compaction
    files_added: int  # by compaction
    files_vacuumed: int


def maintain_table(
    table_uri: str,
    *,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    since: date | None = None,
    compact: bool = True,
) -> TableMaintenance | None:
    """Compact (unless `compact` is false) and vacuum one table, give it the project's
    `PROPERTIES` and write a Delta log checkpoint; None when it does not exist.

    `since` limits compaction to date partitions from that day on (tables partitioned by
    `window_date`), so a daily run rewrites only recent files.
    """
    if (table := try_open(table_uri)) is None:
        return None
    partitions = table.metadata().partition_columns
    filters = (
        [(WINDOW_DATE.name, ">=", since.isoformat())]
        if since is not None and WINDOW_DATE.name in partitions
        else None
    )
    metrics = table.optimize.compact(partition_filters=filters) if compact else {}
    vacuumed = _vacuum(table, retention_hours)
    configuration = table.metadata().configuration
    if any(configuration.get(k) != v for k, v in PROPERTIES.items()):
        table.alter.set_table_properties(PROPERTIES)
    table.create_checkpoint()
    return TableMaintenance(
        table_uri=table_uri,
        files_removed=int(metrics.get("numFilesRemoved", 0)),
        files_added=int(metrics.get("numFilesAdded", 0)),
        files_vacuumed=len(vacuumed),
    )


def _vacuum(table: DeltaTable, retention_hours: int) -> list[str]:
    # Below Delta's 7-day default only on purpose: the operator asked for it.
    return table.vacuum(
        retention_hours=retention_hours,
        dry_run=False,
        enforce_retention_duration=False,
    )
