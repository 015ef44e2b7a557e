"""`read_latest`'s checkpoint: any damage costs one rebuild, never a failed run or a wrong
answer, and leaves a usable checkpoint behind."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from v6_pipeline.lake import Lake, checkpoint, read_latest
from v6_pipeline.lake.paths import checkpoint_uri


def truncate_newest_commit(store: str) -> None:
    newest = sorted(Path(store, "_delta_log").glob("*.json"))[-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])


def delete_a_data_file(store: str) -> None:
    os.remove(DeltaTable(store).file_uris()[0])


def garbage_over_a_data_file(store: str) -> None:
    with open(DeltaTable(store).file_uris()[0], "wb") as f:
        f.write(b"not parquet")


def other_values_in_a_data_file(store: str) -> None:
    """Damaged bytes that still decode (half of random damage to a parquet file does), to
    other positions than were written: the first one-byte change that does."""
    path = Path(DeltaTable(store).file_uris()[0])
    data = path.read_bytes()
    # Probed with pyarrow: polars aborts the process on some damaged files.
    written = pq.read_table(io.BytesIO(data))["position"]
    for offset in range(4, len(data) - 8):
        changed = data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]
        try:
            if not pq.read_table(io.BytesIO(changed))["position"].equals(written):
                path.write_bytes(changed)
                return
        except Exception:
            continue
    raise AssertionError("no change of one byte decodes to other positions")


def rows_lost_from_the_log(store: str) -> None:
    """A readable checkpoint that is not whole: a delete, as a lost file would be."""
    DeltaTable(store).delete("conid = 1")


@pytest.mark.parametrize(
    "damage",
    [
        truncate_newest_commit,
        delete_a_data_file,
        garbage_over_a_data_file,
        other_values_in_a_data_file,
        rows_lost_from_the_log,
    ],
)
def test_a_damaged_checkpoint_costs_one_rebuild(
    updates_uri, append, minute, expected, caplog, damage: Callable[[str], None]
):
    append([("A", 1, 5, 0), ("A", 2, 3, 1), ("B", 1, -2, 2)])
    read_latest(updates_uri, as_of=minute(10))  # builds it
    append([("A", 1, 6, 11)])
    read_latest(updates_uri, as_of=minute(12))  # and uses it: the log has two commits
    store = checkpoint_uri(updates_uri)
    damage(store)
    append([("A", 2, 4, 13)])

    with caplog.at_level(logging.WARNING, logger=checkpoint.__name__):
        got = read_latest(updates_uri, as_of=minute(15))

    assert got.equals(expected(updates_uri, minute(15)))
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1
    assert store in warned[0]
    assert "rebuilding" in warned[0]
    # Usable again: loaded without a warning, and it answers the next read.
    caplog.clear()
    assert checkpoint.load(store) is not None
    append([("A", 1, 7, 16)])
    assert read_latest(updates_uri, as_of=minute(20)).equals(expected(updates_uri, minute(20)))
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_missing_checkpoint_is_not_damage(updates_uri, append, minute, caplog):
    append([("A", 1, 5, 0)])
    with caplog.at_level(logging.WARNING):
        read_latest(updates_uri, as_of=minute(10))
    assert caplog.records == []


def test_maintenance_replaces_a_damaged_checkpoint(updates_uri, append, minute, caplog):
    append([("A", 1, 5, 0)])
    read_latest(updates_uri, as_of=minute(10))
    store = checkpoint_uri(updates_uri)
    truncate_newest_commit(store)

    with caplog.at_level(logging.WARNING, logger=checkpoint.__name__):
        report = Lake(Path(updates_uri).parent).maintain()

    assert store not in [m.table_uri for m in report]
    assert any(store in r.getMessage() for r in caplog.records)
    assert checkpoint.load(store) is not None  # rebuilt, ready for the next run
