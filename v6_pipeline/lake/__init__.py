"""The lake side: Delta tables, the as-of latest read, window writes, maintenance."""

from v6_pipeline.lake.errors import (
    AmbiguousHistoryError,
    BadRowsError,
    LakeError,
    LakeSchemaError,
    LakeStorageError,
    TableNotFoundError,
    TornSnapshotError,
    WriteConflictError,
)
from v6_pipeline.lake.lake import Lake
from v6_pipeline.lake.latest import iter_latest, read_latest, read_latest_many
from v6_pipeline.lake.snapshots import StoredSnapshot

__all__ = [
    "AmbiguousHistoryError",
    "BadRowsError",
    "Lake",
    "LakeError",
    "LakeSchemaError",
    "LakeStorageError",
    "StoredSnapshot",
    "TableNotFoundError",
    "TornSnapshotError",
    "WriteConflictError",
    "iter_latest",
    "read_latest",
    "read_latest_many",
]
