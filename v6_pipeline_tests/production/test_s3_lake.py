"""The lake on S3: every table, the checkpoint, window writes, compaction and vacuum against
a real S3 API (moto's server, with authentication), compared with the same work on local
disk; concurrent window writes; and the three ways an S3 setting can be wrong."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from v6_pipeline import cli
from v6_pipeline.alerts import log as alert_log
from v6_pipeline.alerts.delivery import DeliveryOutcome
from v6_pipeline.definitions import build_defs
from v6_pipeline.defs.partitions import last_closed_window, window_key, window_start
from v6_pipeline.defs.resources import (
    AlertsResource,
    IBGatewayResource,
    LakeResource,
    ReconciliationSettings,
)
from v6_pipeline.defs.run_failures import step_failures
from v6_pipeline.demo.book import DEMO_STALE_AFTER_S, demo_position_updates
from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline.ib.snapshot import take_snapshot
from v6_pipeline.lake import Lake, checkpoint, paths, schemas
from v6_pipeline.lake.source import SEQ
from v6_pipeline.lake.storage import storage_options
from v6_pipeline.lake.windows import read_window, write_window
from v6_pipeline.run.runner import EXIT_CRITICAL, resolve_job, run_windows
from v6_pipeline.stream.status import read_stream_status, write_status
from v6_pipeline_tests.alerts.support import T0, naked_envelope
from v6_pipeline_tests.defs.support import Pipeline, history_start
from v6_pipeline_tests.defs.test_windows import past, store_snapshots
from v6_pipeline_tests.production.s3 import CommitGate, S3Server
from v6_pipeline_tests.stream.test_liveness import beat
from v6_pipeline_tests.support import free_port, v6

WINDOW = timedelta(minutes=5)
DAY = datetime(2026, 11, 20, tzinfo=UTC)
WINDOW_TABLES = (
    paths.IB_POSITION_SNAPSHOTS,
    paths.IB_SNAPSHOT_LOG,
    paths.DELTA_LATEST_POSITIONS,
    paths.POSITION_DISCREPANCIES,
)
JUDGED = ["window_start", "account", "conid", "type", "severity", "ib_position", "delta_position"]


@pytest.fixture
def sqlite_instance() -> Iterator[dg.DagsterInstance]:
    """The lake is under test here, not the instance: the quick embedded one."""
    with dg.instance_for_test() as instance:
        yield instance


def _pipeline(gateway: GatewayThread, lake: Lake, instance: dg.DagsterInstance) -> Pipeline:
    """The project's definitions bound to the emulator and `lake`."""
    defs = build_defs(
        {
            "ib": IBGatewayResource(port=gateway.port, timeout_s="5"),
            "lake": LakeResource(lake_dir=lake.lake_dir),
            "settings": ReconciliationSettings.from_env(stale_after_s=str(DEMO_STALE_AFTER_S)),
            "alerts": AlertsResource(),
        },
        start=(start := history_start()),
    )
    return Pipeline(defs, lake, instance, gateway, start)


def _table(lake: Lake, name: str) -> pl.DataFrame:
    uri = lake.uri(name)
    # How long IB took to answer differs between two snapshots, not between two lakes.
    rows = pl.read_delta(uri, storage_options=storage_options(uri)).drop("duration_s", strict=False)
    return rows.sort(rows.columns)


def test_the_pipeline_on_s3_stores_exactly_what_it_stores_on_local_disk(
    s3: S3Server, demo_gateway: GatewayThread, sqlite_instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    """A backfill of stored snapshots, a live window, the latest read and its checkpoint,
    the alert log, the stream's heartbeats and the daily maintenance: the same on both."""
    now = datetime.now(UTC)
    lakes = {"local": Lake(tmp_path / "lake"), "s3": Lake(f"s3://{s3.new_bucket()}/v6/lake")}
    runs = {k: _pipeline(demo_gateway, lake, sqlite_instance) for k, lake in lakes.items()}
    newest = window_start(runs["s3"].newest_key())
    stored_windows = past(runs["s3"], 3, 2, 1)
    for pipeline in runs.values():
        pipeline.lake.append_position_updates(demo_position_updates(now))
        store_snapshots(pipeline, stored_windows)
        alert_log.append(pipeline.lake.lake_dir, [DeliveryOutcome(naked_envelope(), "raised", T0)])
        write_status(pipeline.lake.lake_dir, beat(0))

    # One run per lake: the stored windows re-judged, the newest snapshotted live.
    outcomes = {
        k: run_windows(
            p.defs, window_key(stored_windows[0]), window_key(newest), instance=p.instance
        )
        for k, p in runs.items()
    }
    assert outcomes["s3"].exit_code == outcomes["local"].exit_code == EXIT_CRITICAL
    found = {name: outcome.discrepancies for name, outcome in outcomes.items()}
    stored = pl.col("window_start") < newest
    assert_frame_equal(found["s3"].filter(stored), found["local"].filter(stored))
    assert "NAKED_POSITION" in set(found["s3"]["type"])
    # The live window: each lake's own snapshot, a moment apart; the same verdicts.
    assert_frame_equal(
        found["s3"].filter(~stored).select(JUDGED), found["local"].filter(~stored).select(JUDGED)
    )
    assert not found["s3"].filter(~stored).is_empty()
    for name in WINDOW_TABLES:
        rows = {k: _table(lake, name).filter(stored) for k, lake in lakes.items()}
        assert not rows["s3"].is_empty(), name
        assert_frame_equal(rows["s3"], rows["local"])
    for name in (paths.ALERT_LOG, paths.STREAM_STATUS):
        assert_frame_equal(_table(lakes["s3"], name), _table(lakes["local"], name))
    assert read_stream_status(lakes["s3"].lake_dir).height == 1
    assert alert_log.read(lakes["s3"].lake_dir)["status"].to_list() == ["raised"]

    # The runs left read_latest's checkpoint in the bucket; a later read starts from it.
    saved = {
        k: checkpoint.load(paths.checkpoint_uri(lake.uri(paths.POSITION_UPDATES)))
        for k, lake in lakes.items()
    }
    assert saved["s3"] is not None
    assert saved["local"] is not None
    # `_seq` numbers files in write order; files of one commit are ordered by their random names.
    assert_frame_equal(saved["s3"].state.drop(SEQ), saved["local"].state.drop(SEQ))
    later = now + timedelta(minutes=1)
    for lake in lakes.values():
        lake.append_position_updates(
            demo_position_updates(later).head(3).with_columns(position=pl.lit(0.0))
        )
    latest = {k: lake.read_latest(as_of=later + timedelta(seconds=1)) for k, lake in lakes.items()}
    assert_frame_equal(latest["s3"], latest["local"])

    done = {
        k: sorted(
            (
                m.table_uri.removeprefix(lake.lake_dir),
                m.files_removed,
                m.files_added,
                m.files_vacuumed,
            )
            for m in lake.maintain(retention_hours=0)
        )
        for k, lake in lakes.items()
    }
    assert done["s3"] == done["local"]
    assert any(vacuumed for *_, vacuumed in done["s3"])
    after = {k: lake.read_latest(as_of=later + timedelta(seconds=1)) for k, lake in lakes.items()}
    assert_frame_equal(after["s3"], latest["local"])
    judged = {
        k: lake.read_discrepancies_of(window_starts=stored_windows) for k, lake in lakes.items()
    }
    assert_frame_equal(judged["s3"], judged["local"])


def _positions(window: datetime, symbol: str, count: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "window_start": [window] * count,
            "taken_at": [window + WINDOW] * count,
            "account": ["DU111"] * count,
            "conid": list(range(count)),
            "symbol": [symbol] * count,
            "position": [1.0] * count,
        }
    )


def _write(uri: str, frame: pl.DataFrame) -> None:
    write_window(
        uri, frame, window_start=frame["window_start"][0], schema=schemas.IB_POSITION_SNAPSHOTS
    )


def _read(uri: str, window: datetime) -> pl.DataFrame:
    rows = read_window(uri, window_start=window, schema=schemas.IB_POSITION_SNAPSHOTS)
    return rows.select("window_start", "account", "conid", "symbol", "position").sort("conid")


def _collide(s3: S3Server, monkeypatch: pytest.MonkeyPatch, uri: str, *frames: pl.DataFrame):
    """Write `frames` from two threads at once through a `CommitGate`: both commit the
    same version, and the store refuses the one it held back."""
    failed: list[BaseException] = []
    start = threading.Barrier(len(frames))

    def write(frame: pl.DataFrame) -> None:
        start.wait()
        try:
            _write(uri, frame)
        except BaseException as error:  # reported by the test, not lost in the thread
            failed.append(error)

    with CommitGate(s3) as gate:
        monkeypatch.setenv("AWS_ENDPOINT_URL", gate.endpoint)
        writers = [threading.Thread(target=write, args=(f,)) for f in frames]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(timeout=120)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    assert not failed, failed
    assert gate.held_status == 412, "the two commits did not race for one version"


def test_two_window_writes_at_once_both_land_once(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"s3://{s3.new_bucket()}/lake/{'ib_position_snapshots'}"
    before = _positions(DAY, "OLD", 3)
    _write(uri, before)
    first, second = _positions(DAY + WINDOW, "A", 4), _positions(DAY + 2 * WINDOW, "B", 5)
    _collide(s3, monkeypatch, uri, first, second)
    for frame in (before, first, second):
        window = frame["window_start"][0]
        assert_frame_equal(_read(uri, window), frame.drop("taken_at"), check_dtypes=False)


def test_a_window_write_that_loses_the_race_is_redone_and_never_duplicates(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    uri = f"s3://{s3.new_bucket()}/lake/ib_position_snapshots"
    before = _positions(DAY, "OLD", 3)
    _write(uri, before)
    window = DAY + WINDOW
    ours, theirs = _positions(window, "A", 4), _positions(window, "B", 6)
    with caplog.at_level(logging.WARNING, logger="v6_pipeline.lake.windows"):
        _collide(s3, monkeypatch, uri, ours, theirs)
    redone = [
        r.getMessage() for r in caplog.records if "another writer committed first" in r.getMessage()
    ]
    assert len(redone) == 1, redone
    stored = _read(uri, window)
    # The window holds one writer's rows, whole: the one that committed last.
    assert stored.height in (4, 6)
    winner = ours if stored.height == 4 else theirs
    assert_frame_equal(stored, winner.drop("taken_at"), check_dtypes=False)
    assert_frame_equal(_read(uri, DAY), before.drop("taken_at"), check_dtypes=False)


@pytest.fixture(scope="module")
def stored_lake(s3_server: S3Server, demo_gateway_thread: GatewayThread) -> tuple[Lake, datetime]:
    """An S3 lake holding the demo's position log and one stored snapshot, and its window."""
    window = last_closed_window(datetime.now(UTC)) - 2 * WINDOW
    lake = Lake(f"s3://{s3_server.new_bucket()}/v6/lake")
    with pytest.MonkeyPatch.context() as env:
        for name, value in s3_server.env().items():
            env.setenv(name, value)
        lake.append_position_updates(demo_position_updates(datetime.now(UTC)))
        answer = take_snapshot(demo_gateway_thread.host, demo_gateway_thread.port, 606, timeout_s=5)
        lake.write_snapshot(
            answer.positions,
            window_start=window,
            taken_at=window + WINDOW,
            accounts=answer.accounts,
            duration_s=answer.duration_s,
        )
    return lake, window


@pytest.mark.parametrize(
    ("wrong", "setting", "words"),
    [
        ("endpoint", "AWS_ENDPOINT_URL", "cannot reach the object store"),
        ("secret", "AWS_ACCESS_KEY_ID", "refused the credentials"),
        ("bucket", "V6_LAKE_DIR", "does not exist"),
    ],
)
def test_a_wrong_s3_setting_fails_the_run_in_a_sentence_and_touches_nothing(
    s3: S3Server,
    stored_lake: tuple[Lake, datetime],
    demo_gateway: GatewayThread,
    sqlite_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    wrong: str,
    setting: str,
    words: str,
) -> None:
    lake, window = stored_lake
    bucket = lake.lake_dir.split("/")[2]
    before = s3.objects(bucket)
    if wrong == "endpoint":
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    elif wrong == "secret":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    else:
        lake = Lake(lake.lake_dir.replace(bucket, f"{bucket}-typo"))
    # Loaded against this test's instance, as `run_windows` loads it (`resolve_job`).
    job = resolve_job(_pipeline(demo_gateway, lake, sqlite_instance).defs, sqlite_instance)
    result = job.execute_in_process(
        partition_key=window_key(window), instance=sqlite_instance, raise_on_error=False
    )
    assert not result.success
    failures = step_failures(result.all_events)
    assert [f.cause for f in failures] == ["LakeStorageError"]
    assert words in failures[0].message
    assert setting in failures[0].message
    assert "Traceback" not in failures[0].message
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret)
    assert s3.objects(bucket) == before


def test_v6_lake_says_which_setting_is_wrong(
    s3: S3Server, capsys: pytest.CaptureFixture[str]
) -> None:
    lake_dir = f"s3://{s3.new_bucket()}-typo/v6/lake"
    assert cli.main(["lake", "init", "--lake-dir", lake_dir]) == 1
    said = capsys.readouterr().out
    assert said.startswith("v6 lake: the bucket ")
    assert "V6_LAKE_DIR" in said
    assert cli.main(["lake", "init", "--lake-dir", lake_dir.replace("-typo", "")]) == 0


def test_v6_reconcile_on_a_missing_bucket_is_one_sentence(
    s3: S3Server, demo_gateway: GatewayThread, tmp_path: Path
) -> None:
    lake_dir = f"s3://{s3.new_bucket()}-typo/v6/lake"
    proc = v6(
        "reconcile",
        env={
            "V6_LAKE_DIR": lake_dir,
            "V6_IB_PORT": str(demo_gateway.port),
            "DAGSTER_HOME": str(tmp_path / "home"),
        },
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = next(line for line in proc.stdout.splitlines() if line.startswith("FAILED"))
    assert "V6_LAKE_DIR" in failed
    assert "Traceback" not in proc.stdout + proc.stderr
