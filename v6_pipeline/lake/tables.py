"""Opening Delta tables (local or on an object store): a missing table is an error that says
how to create it."""

from __future__ import annotations

from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError as DeltaTableNotFound

from v6_pipeline.lake.errors import TableNotFoundError
from v6_pipeline.lake.storage import storage_options

# Set on every table the project creates. A Delta log checkpoint every few commits, with
# file statistics stored as structs (not one JSON string per file to parse): opening a
# table then reads one checkpoint and at most this many commits. Any delta-rs writer
# honours these (its post-commit hook); `maintain_table` sets them on older tables.
PROPERTIES = {
    "delta.checkpointInterval": "10",
    "delta.checkpoint.writeStatsAsStruct": "true",
}


def open_table(uri: str, *, hint: str) -> DeltaTable:
    try:
        return DeltaTable(uri, storage_options=storage_options(uri))
    except DeltaTableNotFound:
        raise TableNotFoundError(uri, hint=hint) from None


def try_open(uri: str) -> DeltaTable | None:
    """The table at `uri`, or None when there is none yet (tables the pipeline creates)."""
    try:
        return DeltaTable(uri, storage_options=storage_options(uri))
    except DeltaTableNotFound:
        return None


def require(uri: str, *, hint: str) -> None:
    """Raise `TableNotFoundError` unless a Delta table is at `uri`; creates nothing."""
    if not DeltaTable.is_deltatable(uri, storage_options=storage_options(uri)):
        raise TableNotFoundError(uri, hint=hint)
