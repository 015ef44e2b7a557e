"""The stored state behind `read_latest`: one small Delta table per `position_updates`.

A checkpoint taken at table version V with cutoff T holds, for the data files of V:
the latest row per key among rows with `timestamp <= T`, every row with `timestamp > T`
(normally the few seconds written after a snapshot), and the list of those files. It is
overwritten in a single Delta commit, so readers always see a whole checkpoint; a failed
write is logged and costs only speed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import polars as pl
from deltalake import write_deltalake

from v6_pipeline.lake import schemas
from v6_pipeline.lake.source import SEQ, PositionLog
from v6_pipeline.lake.tables import try_open

log = logging.getLogger(__name__)

_SCHEMA = schemas.polars_schema(schemas.CHECKPOINT)


@dataclass(frozen=True)
class Checkpoint:
    source_id: str
    version: int
    cutoff: datetime
    default_account: str | None
    files: frozenset[str]  # data file paths as the Delta log names them
    rows: pl.DataFrame  # `POSITION_UPDATES` columns and `_seq`

    @property
    def next_seq(self) -> int:
        """The `_seq` after every kept row: rows read later sort after these on ties."""
        last = self.rows[SEQ].max()
        return 0 if last is None else int(last) + 1  # type: ignore[arg-type]

    def serves(self, source: PositionLog) -> bool:
        """Whether this state is still a prefix of the table (files were only added since)."""
        return (
            source.source_id == self.source_id
            and source.default_account == self.default_account
            and self.files <= set(source.files["path"].to_list())
        )


def load(uri: str) -> Checkpoint | None:
    if (table := try_open(uri)) is None:
        return None
    try:
        frame = pl.read_delta(table)
    # An unreadable checkpoint only costs a rebuild (polars panics on a damaged file).
    except (Exception, pl.exceptions.PanicException):
        log.warning("cannot read the checkpoint at %s; rebuilding it", uri, exc_info=True)
        return None
    header = frame.filter(pl.col("_source_version").is_not_null())
    if header.height != 1:
        return None
    row = header.row(0, named=True)
    return Checkpoint(
        source_id=row["_source_id"],
        version=row["_source_version"],
        cutoff=row["_cutoff"],
        default_account=row["_default_account"],
        files=frozenset(frame["_file"].drop_nulls().to_list()),
        rows=frame.filter(pl.col("conid").is_not_null()).select(
            *schemas.polars_schema(schemas.POSITION_UPDATES), SEQ
        ),
    )


def save(uri: str, checkpoint: Checkpoint) -> None:
    """Replace the stored checkpoint in one commit; a failure (e.g. a concurrent run) is logged."""
    header = pl.DataFrame(
        {
            "_source_version": [checkpoint.version],
            "_source_id": [checkpoint.source_id],
            "_cutoff": [checkpoint.cutoff],
            "_default_account": [checkpoint.default_account],
        }
    )
    files = pl.DataFrame({"_file": sorted(checkpoint.files)}, schema={"_file": pl.String})
    frame = pl.concat(
        [pl.DataFrame(schema=_SCHEMA), checkpoint.rows, files, header], how="diagonal_relaxed"
    ).cast(dict(_SCHEMA))
    try:
        write_deltalake(uri, frame.to_arrow().cast(schemas.CHECKPOINT), mode="overwrite")
    except Exception:
        log.warning("cannot write the checkpoint at %s; the previous one stays", uri, exc_info=True)
