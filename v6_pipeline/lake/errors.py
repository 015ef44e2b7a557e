"""Errors of the lake: each says which table, which column, how many rows, and what to do."""

from __future__ import annotations


class LakeError(Exception):
    """Base of every error the lake raises on purpose."""


class TableNotFoundError(LakeError):
    """No Delta table at the configured location (never read as an empty book)."""

    def __init__(self, table_uri: str, *, hint: str) -> None:
        super().__init__(f"no Delta table at {table_uri}: {hint}")
        self.table_uri = table_uri


class LakeSchemaError(LakeError):
    """A table lacks a column the project needs, or stores it with the wrong type."""

    def __init__(self, table_uri: str, column: str, problem: str) -> None:
        super().__init__(f"{table_uri}: column `{column}` {problem}")
        self.table_uri = table_uri
        self.column = column


class BadRowsError(LakeError):
    """Rows that cannot be used (nulls in key columns); never dropped silently."""

    def __init__(self, table_uri: str, column: str, count: int, *, hint: str) -> None:
        super().__init__(f"{table_uri}: {count} row(s) with a null `{column}`; {hint}")
        self.table_uri = table_uri
        self.column = column
        self.count = count


class TornSnapshotError(LakeError):
    """A window's stored snapshot rows disagree with its log row (an interrupted rewrite)."""
