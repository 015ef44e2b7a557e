"""Errors of the lake: each says which table, which column, how many rows, and what to do."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal


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
    """Rows that cannot be used (a null key, a non-finite quantity); never dropped silently.

    `problem` completes "N row(s) with ...": "a null", "a non-finite". `example` is the key
    (account, conid, timestamp) of one such row, when the rows were read.
    """

    def __init__(
        self,
        table_uri: str,
        column: str,
        count: int,
        *,
        problem: str = "a null",
        example: Mapping[str, object] | None = None,
        hint: str,
    ) -> None:
        shown = f" (e.g. {_describe(example)})" if example else ""
        super().__init__(f"{table_uri}: {count} row(s) with {problem} `{column}`{shown}; {hint}")
        self.table_uri = table_uri
        self.column = column
        self.count = count
        self.example = dict(example) if example else None


def _describe(key: Mapping[str, object]) -> str:
    return ", ".join(
        f"{name} {value.isoformat() if isinstance(value, datetime) else value}"
        for name, value in key.items()
    )


class AmbiguousHistoryError(LakeError):
    """One key has rows with different quantities at one timestamp, and an answer depends
    on which holds: never settled by row order. `ties` are (account, conid, timestamp,
    quantity, other quantity)."""

    def __init__(
        self, table_uri: str, as_of: datetime, ties: list[tuple[str, int, datetime, float, float]]
    ) -> None:
        account, conid, at, *quantities = ties[0]
        low, high = sorted(quantities)
        more = f" (and {len(ties) - 1} more key(s))" if len(ties) > 1 else ""
        super().__init__(
            f"{table_uri}: account {account} conid {conid} has two quantities, {low:g} and "
            f"{high:g}, at the same timestamp {at.isoformat()}{more}, so what Delta holds as of "
            f"{as_of.isoformat()} is ambiguous: delete or correct the wrong row (this project's "
            "writer never writes two rows for one key and time), then re-run the window"
        )
        self.table_uri = table_uri
        self.as_of = as_of
        self.ties = ties


class TornSnapshotError(LakeError):
    """A window's stored snapshot rows disagree with its log row (an interrupted rewrite)."""


class WriteConflictError(LakeError):
    """A write kept losing commit races to other writers of the same table."""


StorageProblem = Literal["unreachable", "credentials", "bucket", "other"]


class LakeStorageError(LakeError):
    """The object store holding the lake cannot be used: unreachable, refusing the
    credentials, without the bucket, or failing otherwise. `setting` is the variable to
    check first."""

    def __init__(self, message: str, *, problem: StorageProblem, setting: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.setting = setting
