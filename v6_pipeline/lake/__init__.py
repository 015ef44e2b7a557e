"""The lake side: Delta tables, the as-of latest read, window writes, maintenance."""

from v6_pipeline.lake.errors import (
    BadRowsError,
    LakeError,
    LakeSchemaError,
    TableNotFoundError,
    TornSnapshotError,
)
from v6_pipeline.lake.latest import iter_latest, read_latest, read_latest_many

__all__ = [
    "BadRowsError",
    "LakeError",
    "LakeSchemaError",
    "TableNotFoundError",
    "TornSnapshotError",
    "iter_latest",
    "read_latest",
    "read_latest_many",
]
