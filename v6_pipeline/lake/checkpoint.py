"""The stored state behind `read_latest`: one small Delta table per `position_updates`.

A checkpoint taken at table version V with cutoff T holds, for the data files of V:
the latest row per key among rows with `timestamp <= T` (the state, in key order), every
row with `timestamp > T` (the tail: normally the few seconds written after a snapshot),
and the list of those files. It is one parquet file, swapped in by a single Delta
commit, so readers always see a whole checkpoint; its parts lie one after the other,
counted in its header (the last row), so reading them copies nothing.

It is only ever a shortcut. The file's name carries the CRC-32 of its bytes, checked
before they are decoded: half of all random damage to a parquet file still decodes (to
other values), and some makes the decoder abort the process. A checkpoint that cannot be
read or does not match its checksum is logged, removed and rebuilt by the read; a failed
write is logged and costs only speed.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime

import polars as pl
from deltalake import DeltaTable
from deltalake.transaction import AddAction

from v6_pipeline.lake import commits, schemas
from v6_pipeline.lake.maintenance import TableMaintenance, maintain_table
from v6_pipeline.lake.paths import is_local
from v6_pipeline.lake.source import SEQ, LogVersion, PositionLog
from v6_pipeline.lake.storage import diagnose, filesystem, storage_options
from v6_pipeline.lake.tables import PROPERTIES, try_open

log = logging.getLogger(__name__)

_SCHEMA = schemas.polars_schema(schemas.CHECKPOINT)
_HEADER, _FILES = "v6.checkpoint", "v6.files"  # keys of the file's metadata
_NAME = re.compile(r"checkpoint-([0-9a-f]{8})-[0-9a-f]{32}\.parquet")  # CRC-32, then unique


@dataclass(frozen=True)
class Checkpoint:
    source: LogVersion
    cutoff: datetime
    default_account: str | None
    files: pl.Series  # data file paths as the Delta log names them
    # `POSITION_UPDATES` columns and `_seq`: the latest row per key up to `cutoff`, in
    # (account, conid) order; and every row after it.
    state: pl.DataFrame
    tail: pl.DataFrame

    @property
    def rows(self) -> pl.DataFrame:
        return pl.concat([self.state, self.tail])

    @property
    def next_seq(self) -> int:
        """The `_seq` after every kept row: rows read later sort after these on ties."""
        seqs = [s for s in (self.state[SEQ].max(), self.tail[SEQ].max()) if s is not None]
        return int(max(seqs)) + 1 if seqs else 0  # type: ignore[call-overload]

    def serves(self, source: PositionLog) -> bool:
        """Whether this state is still a prefix of the table (files were only added since)."""
        if (source.at.table_id, source.default_account) != (
            self.source.table_id,
            self.default_account,
        ):
            return False
        if source.since is not None:  # `source` lists what was added after a version
            return source.since == self.source.version
        return bool(self.files.is_in(source.files["path"].implode()).all())

    def added(self, source: PositionLog) -> pl.DataFrame:
        """The files of `source` this state has not seen (`source` as it `serves`)."""
        if source.since is not None:
            return source.files
        return source.files.filter(~pl.col("path").is_in(self.files.implode()))


class _DamagedError(ValueError):
    """A checkpoint that reads, but not as it was written."""


def load(uri: str) -> Checkpoint | None:
    """The checkpoint at `uri`; None when there is none, or it is unusable (then it is
    removed, so that the next `save` starts afresh). An object store that cannot be
    reached, or refuses access, raises: that is no damage to repair."""
    try:
        # Its file from the newest commits when they tell (a local table), not by
        # opening the table: that costs more than the rest of a steady read.
        path = commits.newest_added_file(uri)
        if path is None:
            if (table := try_open(uri)) is None:
                return None
            paths = table.file_uris()
            if len(paths) != 1:
                raise _DamagedError(f"{len(paths)} data files instead of one")
            path = paths[0]
        return _parse(_checked_bytes(path))
    # Anything a damaged table may raise (polars panics on some damaged parquet files).
    except (Exception, pl.exceptions.PanicException) as error:
        if not is_local(uri) and diagnose(str(error)).problem != "other":
            raise  # the object store failed, not the checkpoint: the read reports it
        log.warning(
            "cannot use the read_latest checkpoint at %s (%s: %s); rebuilding it",
            uri,
            type(error).__name__,
            error,
        )
        _remove(uri)
        return None


def save(uri: str, checkpoint: Checkpoint) -> None:
    """Replace the stored checkpoint in one commit; a failure (e.g. a concurrent run) is logged."""
    at = checkpoint.source
    header = {
        "source_version": at.version,
        "source_id": at.table_id,
        "source_commit": at.commit,
        "source_schema": at.schema_json,
        "source_partitions": list(at.partitions),
        "cutoff": checkpoint.cutoff.isoformat(),
        "default_account": checkpoint.default_account,
        "state_rows": checkpoint.state.height,
    }
    buffer = io.BytesIO()
    pl.concat([checkpoint.state, checkpoint.tail]).cast(dict(_SCHEMA)).write_parquet(
        buffer,
        compression="uncompressed",  # decoded in half the time
        # Log paths are percent-encoded: never a newline in one.
        metadata={_HEADER: json.dumps(header), _FILES: "\n".join(checkpoint.files)},
    )
    data = buffer.getvalue()
    name = f"checkpoint-{zlib.crc32(data):08x}-{uuid.uuid4().hex}.parquet"
    try:
        store, root = filesystem(uri)
        store.create_dir(root)
        with store.open_output_stream(f"{root}/{name}") as out:
            out.write(data)
        table = try_open(uri)
        if table is None:
            table = DeltaTable.create(
                uri,
                schema=schemas.CHECKPOINT,
                mode="ignore",
                configuration=PROPERTIES,
                storage_options=storage_options(uri),
            )
        added = AddAction(name, len(data), {}, int(time.time() * 1000), True, "{}")
        table.create_write_transaction([added], mode="overwrite", schema=schemas.CHECKPOINT)
    except Exception:
        log.warning("cannot write the checkpoint at %s; the previous one stays", uri, exc_info=True)


def maintain(uri: str, *, retention_hours: int) -> TableMaintenance | None:
    """Vacuum the checkpoint (never compacted: that would rename its file); None when there
    is none (or it is damaged: then it is removed, and the next read rebuilds it)."""
    try:
        return maintain_table(uri, retention_hours=retention_hours, compact=False)
    except Exception as error:
        log.warning("cannot maintain the checkpoint at %s (%s); removing it", uri, error)
        _remove(uri)
        return None


def _checked_bytes(path: str) -> bytes:
    """The bytes of the checkpoint's file, once they match the checksum in its name."""
    named = _NAME.fullmatch(path.rsplit("/", 1)[-1])
    if named is None:
        raise _DamagedError(f"{path} is not a file this project wrote")
    store, where = filesystem(path)
    with store.open_input_file(where) as f:
        data = f.readall()
    if f"{zlib.crc32(data):08x}" != named.group(1):
        raise _DamagedError(f"the bytes of {path} do not match the checksum in its name")
    return data


def _parse(data: bytes) -> Checkpoint:
    metadata = pl.read_parquet_metadata(data)
    if _HEADER not in metadata or _FILES not in metadata:
        raise _DamagedError("its file has no header")
    head = json.loads(metadata[_HEADER])
    rows = pl.read_parquet(data)
    if rows.schema != _SCHEMA or rows["conid"].null_count():
        raise _DamagedError("its rows are not those of a checkpoint")
    paths = metadata[_FILES]
    return Checkpoint(
        source=LogVersion(
            version=head["source_version"],
            table_id=head["source_id"],
            commit=head["source_commit"],
            schema_json=head["source_schema"],
            partitions=tuple(head["source_partitions"]),
        ),
        cutoff=datetime.fromisoformat(head["cutoff"]),
        default_account=head["default_account"],
        files=pl.Series("_file", paths.split("\n") if paths else [], dtype=pl.String),
        state=rows.slice(0, head["state_rows"]),
        tail=rows.slice(head["state_rows"]),
    )


def _remove(uri: str) -> None:
    """Delete the checkpoint table (derived state: the next read writes a new one)."""
    try:
        store, path = filesystem(uri)
        store.delete_dir(path)
    except FileNotFoundError:
        pass
    except Exception:
        log.warning("cannot remove the damaged checkpoint at %s; remove it by hand", uri)
