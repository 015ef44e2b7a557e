"""`position_updates` as `read_latest` sees it: its Delta log, validated, and its data files.

The Delta log lists every data file with its write time, row count and column statistics;
`read_latest` chooses files from that list and `PositionLog.scan` reads exactly those.
Every row read is checked (`bad_rows`): a null key or a non-finite position is bad data,
reported with an example row, never judged. A column stored with a type that cannot be
read exactly (a boolean or text `position`, a float `conid`) is refused by name, never
cast. Identity values (`account`, `sec_type`, `symbol`) are normalised as read: trimmed
and upper-cased, so "du222 " and "DU222" are one account and "opt" is OPT.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

import polars as pl
import pyarrow as pa
from deltalake import Schema

from v6_pipeline.lake import commits, schemas
from v6_pipeline.lake.errors import BadRowsError, LakeSchemaError
from v6_pipeline.lake.storage import storage_options
from v6_pipeline.lake.tables import open_table

POSITION_KEY = ["account", "conid"]  # one position
SEQ = "_seq"  # write order: ties on (account, conid, timestamp) go to the later row
# Another quantity at the latest row's very timestamp (null: none): an ambiguous history,
# raised when an answer depends on it (see `latest.py`), carried through the checkpoint.
TIE = "_tie"
IDENTITY = ("account", "sec_type", "symbol")  # trimmed and upper-cased (see `identity`)
OUTPUT = schemas.polars_schema(schemas.POSITION_UPDATES)
# Columns whose nulls make a row unusable (`account` only when no default fills it).
NOT_NULL = ("conid", "position", "timestamp")
# What is wrong with a bad row, judged after `account` is filled from the default:
# (column, "N row(s) with ...", the rule).
BAD_ROWS = (
    *((c, "a null", pl.col(c).is_null()) for c in ("account", *NOT_NULL)),
    ("position", "a non-finite", ~pl.col("position").is_finite()),
    ("account", "a blank", pl.col("account") == ""),
)
EXAMPLE = ["account", "conid", "timestamp"]  # names a bad row in an error

CREATE_HINT = "create an empty one with `v6 lake init --lake-dir DIR` if the book is really empty"
STATS_PRECISION = timedelta(milliseconds=1)

FIX_HINT = "repair these rows in the table (nothing is dropped silently)"


@dataclass(frozen=True)
class LogVersion:
    """What a checkpoint records of `position_updates` at one version."""

    version: int
    table_id: str  # the Delta table id: a table re-created at the same path is another table
    commit: str | None  # `commits.digest` of the version (None: its log is not read directly)
    schema_json: str  # the Delta schema
    partitions: tuple[str, ...]


@dataclass(frozen=True)
class PositionLog:
    uri: str
    at: LogVersion
    default_account: str | None
    file_schema: pl.Schema  # columns stored in the data files (partition columns excluded)
    partition_schema: pl.Schema
    # One row per data file, in write order: path (as in the log), mtime, min_ts, max_ts,
    # num_records, null_<column> (statistics: null when the writer kept none). Every file
    # of the table, or (`since` set) only those added after version `since`.
    files: pl.DataFrame
    since: int | None = None

    @classmethod
    def open(cls, uri: str, *, default_account: str | None) -> PositionLog:
        """The table as its whole log describes it."""
        table = open_table(uri, hint=CREATE_HINT)
        schema = pa.schema(table.schema().to_arrow())
        _check_schema(uri, schema, default_account=default_account)
        if "deletionVectors" in (table.protocol().reader_features or []):
            raise LakeSchemaError(
                uri, "*", "cannot be read: the table uses deletion vectors; purge them first"
            )
        metadata = table.metadata()
        version = table.version()
        at = LogVersion(
            version=version,
            table_id=str(metadata.id),
            commit=commits.digest(uri, version),
            schema_json=table.schema().to_json(),
            partitions=tuple(metadata.partition_columns),
        )
        actions = pl.DataFrame(table.get_add_actions(flatten=True))
        return cls._checked(uri, at, default_account, actions, since=None)

    @classmethod
    def after(cls, uri: str, at: LogVersion, *, default_account: str | None) -> PositionLog | None:
        """The files added since `at` (read from the commits after it, not the whole log),
        or None when the table changed otherwise (then `open` it)."""
        if at.commit is None:
            return None
        appended = commits.appended_since(uri, at.version, at.commit)
        if appended is None:
            return None
        now = replace(at, version=appended.version, commit=appended.commit)
        return cls._checked(uri, now, default_account, _actions(appended.adds), since=at.version)

    @classmethod
    def _checked(
        cls,
        uri: str,
        at: LogVersion,
        default_account: str | None,
        actions: pl.DataFrame,
        *,
        since: int | None,
    ) -> PositionLog:
        full = schemas.polars_schema(pa.schema(Schema.from_json(at.schema_json).to_arrow()))
        file_schema = pl.Schema({k: v for k, v in full.items() if k not in at.partitions})
        log = cls(
            uri=uri,
            at=at,
            default_account=default_account,
            file_schema=file_schema,
            partition_schema=pl.Schema({k: v for k, v in full.items() if k in at.partitions}),
            files=_files(actions, null_checked=_null_checked(file_schema, default_account)),
            since=since,
        )
        log.check_null_counts()
        return log

    def check_null_counts(self) -> None:
        """Bad rows in `files` by the log's statistics (no data read unless there are some:
        then the files holding them are read, to name one)."""
        counts = [
            pl.col(stat) > 0
            for c in _null_checked(self.file_schema, self.default_account)
            if (stat := f"null_{c}") in self.files.columns
        ]
        if counts and not (flagged := self.files.filter(pl.any_horizontal(counts))).is_empty():
            raise_bad_rows(self.uri, bad_rows(self.scan(flagged, seq_start=0)).collect())

    def newest(self) -> datetime | None:
        """The greatest timestamp in `files` by the log's statistics (None if unknown)."""
        stats = self.files["max_ts"]
        return None if stats.is_empty() or stats.null_count() else stats.max()  # type: ignore[return-value]

    def scan(self, files: pl.DataFrame, *, seq_start: int) -> pl.LazyFrame:
        """The rows of `files` (some of `self.files`), normalized, `_seq` from `seq_start`.

        Not checked: the caller checks what it reads with `bad_rows`.
        """
        if files.is_empty():
            return pl.LazyFrame(schema={**OUTPUT, SEQ: pl.Int64, TIE: pl.Float64})
        root = self.uri.removeprefix("file://").rstrip("/") + "/"
        scan = pl.scan_parquet(
            # Log paths are percent-encoded once more than the object names.
            [root + unquote(path) for path in files["path"]],
            schema=self.file_schema,
            hive_partitioning=bool(self.partition_schema),
            hive_schema=self.partition_schema or None,
            missing_columns="insert",
            extra_columns="ignore",
            row_index_name=SEQ,
            row_index_offset=seq_start,
            storage_options=storage_options(self.uri),
        )
        return _normalize(scan, self.default_account)


def bad_rows(rows: pl.LazyFrame) -> pl.LazyFrame:
    """One row summing up `rows` (normalized): for each of `BAD_ROWS`, how many rows break
    it (`count<i>`) and the key of one of them (`example<i>`)."""
    return rows.select(
        *(rule.sum().alias(f"count{i}") for i, (_, _, rule) in enumerate(BAD_ROWS)),
        *(
            pl.struct(EXAMPLE).filter(rule).first().alias(f"example{i}")
            for i, (_, _, rule) in enumerate(BAD_ROWS)
        ),
    )


def raise_bad_rows(uri: str, summary: pl.DataFrame, *, hint: str = FIX_HINT) -> None:
    """Raise `BadRowsError` for the first rule a `bad_rows` summary shows broken."""
    for i, (column, problem, _) in enumerate(BAD_ROWS):
        if count := summary[f"count{i}"][0]:
            example = summary[f"example{i}"][0]
            raise BadRowsError(uri, column, int(count), problem=problem, example=example, hint=hint)


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
    check_types(uri, schema, fix="rewrite the column as")
    ts = schema.field("timestamp").type
    if not pa.types.is_timestamp(ts) or ts.tz is None:
        raise LakeSchemaError(
            uri,
            "timestamp",
            f"is {ts}, not a UTC timestamp: rewrite it as Delta `timestamp` (UTC, "
            "microseconds); a naive time cannot be compared with a UTC `as_of`",
        )


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_exact_integer(t: pa.DataType) -> bool:
    """An integer type that int64 holds exactly (uint64 does not)."""
    return pa.types.is_integer(t) and not pa.types.is_uint64(t)


def _is_number(t: pa.DataType) -> bool:
    # Any quantity a desk holds (far below 2**53) is exact as float64; booleans, decimals
    # and text are refused rather than guessed at.
    return pa.types.is_floating(t) or _is_exact_integer(t)


def _is_text_or_integer(t: pa.DataType) -> bool:
    return _is_text(t) or _is_exact_integer(t)  # 20261218, 100: exact as text


# Stored types each column may have, read without loss into `OUTPUT` (else refused);
# `timestamp` is checked on its own (it must be a UTC timestamp).
_TYPES = {
    "account": (_is_text, "text"),
    "sec_type": (_is_text, "text"),
    "symbol": (_is_text, "text"),
    "conid": (_is_exact_integer, "an integer"),
    "position": (_is_number, "a number"),
    "strike": (_is_number, "a number"),
    "avg_cost": (_is_number, "a number"),
    "right": (_is_text, "text"),
    "expiry": (_is_text_or_integer, "text"),
    "multiplier": (_is_text_or_integer, "text"),
    "currency": (_is_text, "text"),
}


def check_types(uri: str, schema: pa.Schema, *, fix: str) -> None:
    """Refuse a `position_updates` column whose type cannot be read exactly (a boolean or
    text quantity, a float conid): `LakeSchemaError` naming it, never a cast."""
    for field in schema:
        known = _TYPES.get(field.name)
        if known and not pa.types.is_null(field.type) and not known[0](field.type):
            raise LakeSchemaError(
                uri,
                field.name,
                f"is {field.type}, not {known[1]}: it cannot be read exactly; "
                f"{fix} {schemas.POSITION_UPDATES.field(field.name).type}",
            )


_TS = OUTPUT["timestamp"]
# The columns of `DeltaTable.get_add_actions(flatten=True)` that `_files` uses.
_ACTION_COLUMNS = {
    "path": pl.String(),
    "modification_time": pl.Int64(),
    "num_records": pl.Int64(),
    "min.timestamp": _TS,
    "max.timestamp": _TS,
    **{f"null_count.{c}": pl.Int64() for c in OUTPUT},
}


def _actions(adds: list[dict[str, Any]]) -> pl.DataFrame:
    """`add` actions of commit files as `get_add_actions(flatten=True)` gives them."""
    stats = [json.loads(add.get("stats") or "{}") for add in adds]
    values: dict[str, list[Any]] = {
        "path": [add["path"] for add in adds],
        "modification_time": [add.get("modificationTime") for add in adds],
        "num_records": [s.get("numRecords") for s in stats],
        "min.timestamp": [_instant((s.get("minValues") or {}).get("timestamp")) for s in stats],
        "max.timestamp": [_instant((s.get("maxValues") or {}).get("timestamp")) for s in stats],
        **{f"null_count.{c}": [(s.get("nullCount") or {}).get(c) for s in stats] for c in OUTPUT},
    }
    return pl.DataFrame(values, schema=_ACTION_COLUMNS)


def _instant(text: object) -> datetime | None:
    """A timestamp statistic (ISO 8601, UTC); None (unknown) if it is not one."""
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _files(actions: pl.DataFrame, *, null_checked: list[str]) -> pl.DataFrame:
    if actions.is_empty():
        actions = pl.DataFrame(schema={"path": pl.String, "modification_time": pl.Int64})

    def stat(name: str, dtype: pl.DataType) -> pl.Expr:
        return pl.col(name).cast(dtype) if name in actions.columns else pl.lit(None, dtype)

    return actions.select(
        "path",
        mtime=pl.col("modification_time"),
        num_records=stat("num_records", pl.Int64()),
        # Delta keeps these statistics in milliseconds: widened, they bound the true values.
        min_ts=stat("min.timestamp", _TS) - STATS_PRECISION,
        max_ts=stat("max.timestamp", _TS) + STATS_PRECISION,
        **{f"null_{c}": stat(f"null_count.{c}", pl.Int64()) for c in null_checked},
    ).sort("mtime", "path")


def identity(value: pl.Expr) -> pl.Expr:
    """An identity value as judged: trimmed, upper-cased (a blank stays blank)."""
    return value.str.strip_chars().str.to_uppercase()


def identities() -> list[pl.Expr]:
    """`sec_type` and `symbol` as judged; a blank sec type is unknown (in scope, as a null
    is). Applied to the latest rows only: they are not keys, so normalising every row read
    would cost a pass over history for nothing."""
    return [identity(pl.col("sec_type")).replace("", None), identity(pl.col("symbol"))]


def _normalize(frame: pl.LazyFrame, default_account: str | None) -> pl.LazyFrame:
    """The `POSITION_UPDATES` columns (plus `_seq`, `_tie`): legacy gaps filled, the
    account normalised, extras dropped (`sec_type`, `symbol`: see `identities`)."""
    present = frame.collect_schema()
    if "account" not in present:
        account = pl.lit(default_account, pl.String)
    elif default_account is not None:
        account = pl.col("account").cast(pl.String).fill_null(default_account)
    else:
        account = pl.col("account")

    def column(name: str, dtype: pl.DataType) -> pl.Expr:
        if name == "account":
            value = account.cast(dtype)
        elif name not in present:
            return pl.lit(None, dtype).alias(name)
        else:
            value = pl.col(name).cast(dtype)
        if name == "account":  # a key: normalised before rows are grouped by it
            value = identity(value)
        return value.alias(name)

    return frame.select(
        *(column(name, dtype) for name, dtype in OUTPUT.items()),
        pl.col(SEQ).cast(pl.Int64),
        pl.lit(None, pl.Float64).alias(TIE),
    )
