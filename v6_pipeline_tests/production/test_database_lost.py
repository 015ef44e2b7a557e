"""The Dagster instance's PostgreSQL stops in the middle of a live run (issue #20).

`v6 reconcile` takes the window's snapshot, and while it waits `V6_SETTLE_S` before the
Delta read the server is stopped with `pg_ctl`. The run must end with one sentence
naming DAGSTER_PG_URL (its password masked), not a traceback; the window, snapshotted
and not judged, must be named as such by the next run and the printout, never taken for
a clean one; and judging it afterwards clears that.

The server is this module's own (it is stopped), not the session's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from v6_pipeline.defs.partitions import WINDOW, window_key, window_start
from v6_pipeline.demo.book import demo_position_updates
from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline.lake import Lake
from v6_pipeline.lake.snapshots import JudgmentLog
from v6_pipeline.run.runner import EXIT_CRITICAL
from v6_pipeline_tests.defs.test_windows import window_metadata
from v6_pipeline_tests.production.support import (
    DEPLOY,
    PostgresServer,
    PostgresUnavailableError,
    start_postgres,
)
from v6_pipeline_tests.support import v6

PASSWORD = "pg-s3cret"  # the server trusts local connections: the password is never checked
SETTLE_S = 20  # time enough to stop the server while the run waits
_TAKING = re.compile(r"window (\d{4}-\d\d-\d\d-\d\d:\d\d): taking a live snapshot")


@dataclass
class LostRun:
    """`v6 reconcile` of the newest window, its database stopped during the settle wait."""

    server: PostgresServer
    env: dict[str, str]
    lake: Lake
    home: Path
    window: datetime
    stopped_after_s: float  # from the snapshot's taken_at to the server's stop
    returncode: int
    out: str
    err: str


def _pg_ctl(server: PostgresServer, *args: str) -> None:
    data = str(server.root / "data")
    done = server._run(str(server.bin / "pg_ctl"), "-D", data, *args)
    assert done.returncode == 0, done.stderr


def _restart(server: PostgresServer) -> None:
    """Start the stopped server again on its port, as support.start_postgres did."""
    options = (
        f"-c listen_addresses=127.0.0.1 -p {server.port} -c unix_socket_directories='' "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c timezone=UTC"
    )
    log = str(server.root / "server.log")
    _pg_ctl(server, "-l", log, "-w", "-t", "60", "-o", options, "start")


def _newest(log: list[str]) -> datetime:
    """The window the run snapshotted, from its log line "window KEY: taking a live ..."."""
    found = next(m for line in log if (m := _TAKING.search(line)))
    return window_start(found.group(1))


@pytest.fixture(scope="module")
def lost_run(
    tmp_path_factory: pytest.TempPathFactory, demo_gateway_thread: GatewayThread
) -> Iterator[LostRun]:
    try:
        server = start_postgres()
    except PostgresUnavailableError as exc:
        pytest.fail(f"no PostgreSQL server for the production tests: {exc}", pytrace=False)
    try:
        root = tmp_path_factory.mktemp("database_lost")
        home = root / "dagster_home"
        home.mkdir()
        shutil.copyfile(DEPLOY / "dagster.yaml", home / "dagster.yaml")
        lake = Lake(root / "lake")
        lake.append_position_updates(demo_position_updates(datetime.now(UTC)))
        demo_gateway_thread.set_faults([])
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_URL": (
                f"postgresql+psycopg2://postgres:{PASSWORD}@127.0.0.1:{server.port}/postgres"
            ),
            "V6_IB_PORT": str(demo_gateway_thread.port),
            "V6_LAKE_DIR": str(root / "lake"),
            "V6_SETTLE_S": str(SETTLE_S),
            "V6_CONFIRM_AFTER_S": "0",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "v6_pipeline.cli", "reconcile", "-v"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        out: list[str] = []
        err: list[str] = []
        readers = [
            threading.Thread(target=lambda: out.extend(proc.stdout or ()), daemon=True),
            threading.Thread(target=lambda: err.extend(proc.stderr or ()), daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            deadline = time.monotonic() + 120
            # The run's log says it waits: its snapshot is stored, its Delta read not done.
            while not any("(V6_SETTLE_S)" in line for line in err):
                assert proc.poll() is None, "".join(err)
                assert time.monotonic() < deadline, "".join(err)
                time.sleep(0.1)
            _pg_ctl(server, "-m", "fast", "-w", "stop")
            snap = next(iter(lake.read_snapshots(window_starts=[_newest(err)]).values()))
            assert snap is not None
            stopped_after_s = (datetime.now(UTC) - snap.taken_at).total_seconds()
            proc.wait(timeout=400)
            for reader in readers:
                reader.join(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        _restart(server)
        yield LostRun(
            server,
            env,
            lake,
            home,
            snap.window_start,
            stopped_after_s,
            proc.returncode,
            "".join(out),
            "".join(err),
        )
    finally:
        server.stop()


def test_a_database_lost_mid_run_ends_with_one_sentence_naming_dagster_pg_url(
    lost_run: LostRun,
) -> None:
    run = lost_run
    assert run.stopped_after_s < SETTLE_S, "the server stopped after the settle wait"
    key = window_key(run.window)
    assert run.returncode == 1, run.out + run.err
    printed = run.out.strip().splitlines()
    assert printed, run.err[-3000:]  # a traceback, and nothing said
    said = printed[-1]
    assert said.startswith(
        f"v6 reconcile: lost the Dagster instance's database during the run of window {key}, "
        "so the run could not finish: cannot open the Dagster instance's PostgreSQL database "
        "(DAGSTER_PG_URL: "
        f"postgresql+psycopg2://postgres:***@127.0.0.1:{run.server.port}/postgres): "
    ), run.out + run.err[-3000:]
    assert "Connection refused" in said
    assert said.endswith(f"re-run with `v6 reconcile --window {key}`")
    assert "Traceback" not in run.out + run.err
    assert PASSWORD not in run.out + run.err


def test_a_window_left_unjudged_is_named_by_the_next_run_until_it_is_judged(
    lost_run: LostRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = lost_run
    key = window_key(run.window)
    judgments = JudgmentLog(run.lake.lake_dir)
    # Snapshotted, never judged: whatever position_discrepancies holds, it is no verdict.
    assert run.lake.read_snapshot(window_start=run.window) is not None
    assert judgments.read([run.window]) == {run.window: None}
    now = datetime.now(UTC)
    assert [
        u.window_start for u in judgments.unjudged(since=now - timedelta(days=1), until=now)
    ] == [run.window]

    # The next run (here an earlier window, from its stored snapshot) names it.
    earlier = run.window - WINDOW
    answer = run.lake.read_snapshot(window_start=run.window)
    assert answer is not None
    run.lake.write_snapshot(
        answer.positions.drop("taken_at", "window_start"),
        window_start=earlier,
        taken_at=earlier + WINDOW + timedelta(seconds=2),
        accounts=answer.accounts,
        duration_s=answer.duration_s,
    )
    env = {**run.env, "V6_SETTLE_S": "0"}
    after = v6("reconcile", "-v", "--window", window_key(earlier), env=env, timeout=300)
    assert after.returncode == EXIT_CRITICAL, after.stdout + after.stderr
    named = (
        f"window {key} was snapshotted at {answer.taken_at:%Y-%m-%d %H:%M:%S} UTC but never "
        f"judged: re-run it with `v6 reconcile --window {key}`"
    )
    assert named in after.stderr, after.stderr[-3000:]  # the run's log
    monkeypatch.setenv("DAGSTER_PG_URL", run.env["DAGSTER_PG_URL"])
    with dg.DagsterInstance.from_config(str(run.home)) as instance:
        metadata = window_metadata(instance, "position_discrepancies", window_key(earlier))
    assert metadata["unjudged_window_count"] == 1
    assert named in str(metadata["unjudged_windows"])

    # A run of it that fails before judging (an account the gateway does not manage)
    # prints it as un-judged, not as "no discrepancy rows were written".
    failed = v6("reconcile", "--window", key, env={**env, "V6_ACCOUNTS": "DU999"}, timeout=300)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    verdict = failed.stdout.splitlines()[0]
    assert verdict.startswith(f"FAILED    window {key}: ")
    assert "V6_ACCOUNTS names DU999" in verdict
    assert (
        f"UNJUDGED  window {key} was snapshotted at {answer.taken_at:%Y-%m-%d %H:%M:%S} UTC but "
        f"not judged: its missing discrepancy rows say nothing; re-run it with "
        f"`v6 reconcile --window {key}`"
    ) in failed.stdout
    assert "No discrepancy rows were written" not in failed.stdout

    # Judging it (a re-run of the window, from its stored snapshot) clears it.
    judged = v6("reconcile", "--window", key, env=env, timeout=300)
    assert judged.returncode == EXIT_CRITICAL, judged.stdout + judged.stderr
    assert "UNJUDGED" not in judged.stdout
    assert "never judged" not in judged.stderr
    recorded = judgments.read([run.window])[run.window]
    assert recorded is not None
    assert recorded.naked_count == 1
    assert recorded.as_of == answer.taken_at
    now = datetime.now(UTC)
    assert judgments.unjudged(since=now - timedelta(days=1), until=now) == []
