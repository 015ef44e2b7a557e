"""`position_updates` as `read_latest` sees it: its Delta log, validated, and its data files.

The Delta log lists every data file with its write time, row count and column statistics;
`read_latest` chooses files from that list and `PositionLog.read` reads exactly those.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import unquote

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable

from v6_pipeline.lake import schemas
from v6_pipeline.lake.errors import BadRowsError, LakeSchemaError
from v6_pipeline.lake.tables import open_table

KEY = ["account", "conid"]
SEQ = "_seq"  # write order: ties on (account, conid, timestamp) go to the later row
OUTPUT = schemas.polars_schema(schemas.POSITION_UPDATES)
# Columns whose nulls make a row unusable (`account` only when no default fills it).
NOT_NULL = ("conid", "position", "timestamp")

CREATE_HINT = "create an empty one with `v6 lake init --lake-dir DIR` if the book is really empty"
STATS_PRECISION = timedelta(milliseconds=1)

FIX_HINT = "repair these rows in the table (nothing is dropped silently)"


@dataclass(frozen=True)
class PositionLog:
    uri: str
    version: int
    source_id: str  # the Delta table id: a table re-created at the same path is another table
    default_account: str | None
    file_schema: pl.Schema  # columns stored in the data files (partition columns excluded)
    partition_schema: pl.Schema
    # One row per data file, in write order: path (as in the log), uri, min_ts, max_ts,
    # num_records, null_<column> (statistics: null when the writer kept none).
    files: pl.DataFrame

    @classmethod
    def open(cls, uri: str, *, default_account: str | None) -> PositionLog:
        table = open_table(uri, hint=CREATE_HINT)
        schema = pa.schema(table.schema().to_arrow())
        _check_schema(uri, schema, default_account=default_account)
        if "deletionVectors" in (table.protocol().reader_features or []):
            raise LakeSchemaError(
                uri, "*", "cannot be read: the table uses deletion vectors; purge them first"
            )
        partitions = table.metadata().partition_columns
        full = pl.Schema(pl.from_arrow(schema.empty_table()).schema)  # type: ignore[union-attr]
        log = cls(
            uri=uri,
            version=table.version(),
            source_id=str(table.metadata().id),
            default_account=default_account,
            file_schema=pl.Schema({k: v for k, v in full.items() if k not in partitions}),
            partition_schema=pl.Schema({k: v for k, v in full.items() if k in partitions}),
            files=_files(table, null_checked=_null_checked(schema.names, default_account)),
        )
        log.check_null_counts()
        return log

    def check_null_counts(self) -> None:
        """Bad rows anywhere in the table, from the Delta statistics (no data read)."""
        for column in _null_checked(self.file_schema, self.default_account):
            stat = f"null_{column}"
            if stat in self.files.columns and (count := int(self.files[stat].sum() or 0)):
                raise BadRowsError(self.uri, column, count, hint=FIX_HINT)

    def newest(self) -> datetime | None:
        """The greatest timestamp in the table by the log's statistics (None if unknown)."""
        stats = self.files["max_ts"]
        return None if stats.is_empty() or stats.null_count() else stats.max()  # type: ignore[return-value]

    def scan(self, files: pl.DataFrame, *, seq_start: int) -> pl.LazyFrame:
        """The rows of `files` (some of `self.files`), normalized, `_seq` from `seq_start`.

        Files the log has no null counts for are checked here, by reading those columns.
        """
        if files.is_empty():
            return pl.LazyFrame(schema={**OUTPUT, SEQ: pl.Int64})
        checked = _null_checked(self.file_schema, self.default_account)
        unchecked = files.filter(pl.any_horizontal(pl.col(f"null_{c}").is_null() for c in checked))
        if checked and not unchecked.is_empty():
            counts = self._scan(unchecked, 0).select(pl.col(checked).null_count()).collect()
            for column in checked:
                if count := int(counts[column][0]):
                    raise BadRowsError(self.uri, column, count, hint=FIX_HINT)
        return _normalize(self._scan(files, seq_start), self.default_account)

    def read(self, files: pl.DataFrame, *, seq_start: int) -> pl.DataFrame:
        return self.scan(files, seq_start=seq_start).collect()

    def _scan(self, files: pl.DataFrame, seq_start: int) -> pl.LazyFrame:
        return pl.scan_parquet(
            files["uri"].to_list(),
            schema=self.file_schema,
            hive_partitioning=bool(self.partition_schema),
            hive_schema=self.partition_schema or None,
            missing_columns="insert",
            extra_columns="ignore",
            row_index_name=SEQ,
            row_index_offset=seq_start,
        )


def _null_checked(columns: Iterable[str], default_account: str | None) -> list[str]:
    """The columns present whose nulls are bad rows (`account` only without a default)."""
    checked = (*NOT_NULL, "account") if default_account is None else NOT_NULL
    return [c for c in checked if c in columns]


def _check_schema(uri: str, schema: pa.Schema, *, default_account: str | None) -> None:
    for column in schemas.POSITION_UPDATES_REQUIRED:
        if column not in schema.names:
            raise LakeSchemaError(uri, column, "is missing (a required column of position_updates)")
    if "account" not in schema.names and default_account is None:
        raise LakeSchemaError(
            uri,
            "account",
            "is missing (a table from the earlier writer): set V6_DEFAULT_ACCOUNT "
            "to the account its rows belong to",
        )
    ts = schema.field("timestamp").type
    if not pa.types.is_timestamp(ts) or ts.tz is None:
        raise LakeSchemaError(
            uri,
            "timestamp",
            f"is {ts}, not a UTC timestamp: rewrite it as Delta `timestamp` (UTC, "
            "microseconds); a naive time cannot be compared with a UTC `as_of`",
        )


def _files(table: DeltaTable, *, null_checked: list[str]) -> pl.DataFrame:
    actions = pl.DataFrame(table.get_add_actions(flatten=True))
    root = table.table_uri.removeprefix("file://").rstrip("/") + "/"
    if actions.is_empty():
        actions = pl.DataFrame(schema={"path": pl.String, "modification_time": pl.Int64})

    def stat(name: str, dtype: pl.DataType) -> pl.Expr:
        return pl.col(name) if name in actions.columns else pl.lit(None, dtype)

    return actions.select(
        "path",
        # Log paths are percent-encoded once more than the object names.
        uri=pl.lit(root) + pl.col("path").map_elements(unquote, return_dtype=pl.String),
        mtime=pl.col("modification_time"),
        num_records=stat("num_records", pl.Int64()),
        # Delta keeps these statistics in milliseconds: widened, they bound the true values.
        min_ts=stat("min.timestamp", OUTPUT["timestamp"]) - STATS_PRECISION,
        max_ts=stat("max.timestamp", OUTPUT["timestamp"]) + STATS_PRECISION,
        **{f"null_{c}": stat(f"null_count.{c}", pl.Int64()) for c in null_checked},
    ).sort("mtime", "path")


def _normalize(frame: pl.LazyFrame, default_account: str | None) -> pl.LazyFrame:
    """The `POSITION_UPDATES` columns (plus `_seq`): legacy gaps filled, extras dropped."""
    present = frame.collect_schema()
    if "account" not in present:
        account = pl.lit(default_account, pl.String)
    elif default_account is not None:
        account = pl.col("account").fill_null(default_account)
    else:
        account = pl.col("account")
    return frame.select(
        *(
            account.cast(dtype).alias(name)
            if name == "account"
            else pl.col(name).cast(dtype)
            if name in present
            else pl.lit(None, dtype).alias(name)
            for name, dtype in OUTPUT.items()
        ),
        pl.col(SEQ).cast(pl.Int64),
    )
