"""Opening Delta tables: a missing table is an error that says how to create it."""

from __future__ import annotations

from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError as DeltaTableNotFound

from v6_pipeline.lake.errors import TableNotFoundError


def open_table(uri: str, *, hint: str) -> DeltaTable:
    try:
        return DeltaTable(uri)
    except DeltaTableNotFound:
        raise TableNotFoundError(uri, hint=hint) from None


def try_open(uri: str) -> DeltaTable | None:
    """The table at `uri`, or None when there is none yet (tables the pipeline creates)."""
    try:
        return DeltaTable(uri)
    except DeltaTableNotFound:
        return None
