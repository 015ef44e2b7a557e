"""The lake side: Delta tables, the as-of latest read, window writes, maintenance."""

from v6_pipeline.lake.errors import (
    BadRowsError,
    LakeError,
    LakeSchemaError,
    TableNotFoundError,
    TornSnapshotError,
)
from v6_pipeline.lake.latest import read_latest

__all__ = [
    "BadRowsError",
    "LakeError",
    "LakeSchemaError",
    "TableNotFoundError",
    "TornSnapshotError",
    "read_latest",
]
