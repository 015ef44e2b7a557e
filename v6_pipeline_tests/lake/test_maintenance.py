"""Compaction and vacuum keep the answers and shrink the file count."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import polars as pl
from deltalake import DeltaTable

from v6_pipeline.cli import lake as lake_command
from v6_pipeline.lake import Lake, checkpoint, latest, read_latest
from v6_pipeline.lake.paths import checkpoint_uri
from v6_pipeline.lake.tables import PROPERTIES


def test_maintain_compacts_vacuums_and_keeps_answers(tmp_path, append, minute, expected):
    lake = Lake(tmp_path / "lake")
    for step in range(4):
        append([("A", 3 * step, step, step), ("B", 3 * step, -step, step)])  # one partition
    for m in range(0, 20, 5):
        lake.write_discrepancies_of(
            pl.DataFrame(
                {
                    "as_of": [minute(m)],
                    "account": ["A"],
                    "conid": [m],
                    "type": ["STALE_DATA"],
                    "severity": ["warning"],
                    "ib_position": [1.0],
                    "details": ["old"],
                }
            ),
            window_starts=[minute(m)],
        )
    updates = lake.uri("position_updates")
    before = read_latest(updates, as_of=minute(10))
    files_before = len(DeltaTable(updates).file_uris())

    report = {m.table_uri: m for m in lake.maintain(retention_hours=0)}

    assert report[updates].files_removed == files_before
    assert len(DeltaTable(updates).file_uris()) == 1
    assert report[updates].files_vacuumed == files_before
    assert report[lake.uri("position_discrepancies")].files_removed == 4
    assert read_latest(updates, as_of=minute(10)).equals(before)
    assert before.equals(expected(updates, minute(10)))
    # The checkpoint was rebuilt against the compacted files, ready for the next run.
    saved = checkpoint.load(checkpoint_uri(updates))
    assert saved is not None
    assert set(saved.files) == set(pl.DataFrame(DeltaTable(updates).get_add_actions())["path"])


def test_since_limits_compaction_to_recent_days(tmp_path, minute):
    lake = Lake(tmp_path)
    frame = pl.DataFrame(
        {"taken_at": [minute(0)], "account": ["A"], "conid": [1], "position": [1.0]}
    )
    for day in (minute(0), minute(60 * 24)):
        for m in (0, 5):
            window = day + (minute(m) - minute(0))
            lake.write_snapshot(
                frame.with_columns(taken_at=pl.lit(window)),
                window_start=window,
                taken_at=window,
                accounts=["A"],
                duration_s=0.1,
            )

    report = {m.table_uri: m for m in lake.maintain(since=minute(60 * 24).date())}

    assert report[lake.uri("ib_position_snapshots")].files_removed == 2


def test_command_init_and_maintain(tmp_path, capsys, monkeypatch):
    parser = argparse.ArgumentParser()
    lake_command.configure(parser)
    monkeypatch.setenv("V6_LAKE_DIR", str(tmp_path / "lake"))

    assert lake_command.run(parser.parse_args(["init"])) == 0
    assert lake_command.run(parser.parse_args(["init"])) == 0
    assert lake_command.run(parser.parse_args(["maintain", "--retention-hours", "0"])) == 0

    out = capsys.readouterr().out.splitlines()
    where = str(tmp_path / "lake" / "position_updates")
    assert out[0] == f"created empty {where}"
    assert out[1] == f"already exists: {where}"
    assert out[2].startswith(f"{where}: compaction removed 0 file(s)")
    assert DeltaTable(where).version() >= 0


def last_checkpoint(uri: str) -> int | None:
    """The version of the newest Delta log checkpoint of the table, if any."""
    marker = Path(uri, "_delta_log", "_last_checkpoint")
    return json.loads(marker.read_text())["version"] if marker.exists() else None


def test_project_tables_checkpoint_their_delta_log(tmp_path, rows, minute, monkeypatch):
    monkeypatch.setattr(latest, "REFRESH_ROWS", 1)  # every read rewrites its checkpoint
    lake = Lake(tmp_path)
    lake.create_position_updates()
    for m in range(10):
        lake.append_position_updates(rows([("A", 1, m, m)]))
        lake.read_latest(as_of=minute(m))
        lake.write_discrepancies_of(
            pl.DataFrame(
                {
                    "as_of": [minute(m)],
                    "account": ["A"],
                    "conid": [1],
                    "type": ["STALE_DATA"],
                    "severity": ["warning"],
                    "ib_position": [1.0],
                    "details": ["old"],
                }
            ),
            window_starts=[minute(5 * m)],
        )

    updates = lake.uri("position_updates")
    for uri in (updates, lake.uri("position_discrepancies"), checkpoint_uri(updates)):
        assert DeltaTable(uri).metadata().configuration == PROPERTIES
        assert last_checkpoint(uri) is not None, uri


def test_maintenance_checkpoints_tables_written_elsewhere(updates_uri, append, minute):
    for step in range(3):
        append([("A", step, step, step)])  # a plain writer: Delta's defaults
    assert last_checkpoint(updates_uri) is None

    Lake(Path(updates_uri).parent).maintain()

    table = DeltaTable(updates_uri)
    assert table.metadata().configuration == PROPERTIES
    assert last_checkpoint(updates_uri) == table.version()
