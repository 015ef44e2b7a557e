"""The `v6` command as a user runs it: a real process, the real emulator, real tables."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from v6_pipeline.demo.book import demo_position_updates
from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline.lake.lake import Lake
from v6_pipeline_tests.alerts.support import webhook
from v6_pipeline_tests.support import free_port, v6, wait_for_ui
from v6_pipeline_tests.ui.dagster_dev import graphql


def test_demo_runs_as_designed(tmp_path: Path) -> None:
    proc = v6("demo", "--dir", str(tmp_path / "demo"), env={"V6_ALERT_URLS": ""})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "no_naked_positions FAILED (1 naked position(s))" in out
    for kind in ("NAKED_POSITION", "MISSING_FROM_DELTA", "POSITION_MISMATCH", "STALE_DATA"):
        assert kind in out
    assert "conid 500004" in out  # the naked leg
    assert "conid 500005" not in out.split("discrepancy row(s):")[1]  # closed to 0: quiet
    # The alert the sensor raises for it, as the on-call trader would read it.
    alert = out.split("The alert discrepancy_alert_sensor raises for it:")[1]
    assert "CRITICAL: 1 naked position(s) in DU222" in alert
    assert "| Run: http://127.0.0.1:3000/runs/" in alert
    assert "V6_ALERT_URLS is unset" in alert
    assert "ERROR" not in proc.stderr  # shown once, not again by the sensor's own log
    assert "v6 demo --ui" in out
    assert (tmp_path / "demo" / "lake" / "position_discrepancies" / "_delta_log").is_dir()
    assert (tmp_path / "demo" / "dagster_home" / "dagster.yaml").is_file()
    # Running it again starts afresh, in the folder it made.
    assert v6("demo", "--dir", str(tmp_path / "demo")).returncode == 0


def test_demo_sends_its_alert_where_V6_ALERT_URLS_points(tmp_path: Path) -> None:
    with webhook() as hook:
        proc = v6("demo", "--dir", str(tmp_path / "demo"), env={"V6_ALERT_URLS": hook.apprise_url})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [m["title"] for m in hook.received] == [
        next(line.strip() for line in proc.stdout.splitlines() if "CRITICAL: 1 naked" in line)
    ]
    assert "NAKED: DU222 SPY 2026-12-18 580 P" in hook.received[0]["message"]
    assert re.search(r"-> json://127\.0\.0\.1:\d+: delivered", proc.stdout), proc.stdout


def test_demo_names_a_bad_alert_setting(tmp_path: Path) -> None:
    proc = v6("demo", "--dir", str(tmp_path / "demo"), env={"V6_ALERT_URLS": "nonsense://x"})
    assert proc.returncode == 1
    assert "V6_ALERT_URLS: entry 1" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_demo_refuses_to_wipe_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    proc = v6("demo", "--dir", str(tmp_path))
    assert proc.returncode == 1
    assert "was not made by the demo" in proc.stdout
    assert (tmp_path / "precious.txt").exists()


@pytest.fixture
def gateway(demo_gateway: GatewayThread) -> GatewayThread:
    return demo_gateway


def settings(gw: GatewayThread, lake_dir: Path, home: Path) -> dict[str, str]:
    return {
        "V6_IB_PORT": str(gw.port),
        "V6_LAKE_DIR": str(lake_dir),
        "DAGSTER_HOME": str(home),
        "V6_IB_TIMEOUT_S": "2",
    }


def test_reconcile_exits_2_on_a_naked_position(gateway: GatewayThread, tmp_path: Path) -> None:
    Lake(tmp_path / "lake").append_position_updates(demo_position_updates(datetime.now(UTC)))
    env = settings(gateway, tmp_path / "lake", tmp_path / "home")
    proc = v6("reconcile", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "CRITICAL" in proc.stdout
    assert "NAKED: DU222 SPY 2026-12-18 580 P" in proc.stdout
    assert f"Dagster instance: {tmp_path / 'home'}" in proc.stdout
    # Not at a terminal either (cron, a service): the report only, the event log in a file.
    assert proc.stderr == ""
    logged = proc.stdout.split("Dagster's event log: ")[1].split(" (on stderr")[0]
    assert "STEP_FAILURE" in Path(logged).read_text()
    verbose = v6("reconcile", "-v", env=env)
    assert verbose.returncode == 2
    assert "STEP_FAILURE" in verbose.stderr


def on_a_terminal(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """`v6 ARGS` with stderr on a pseudo-terminal, as a person runs it: exit code,
    stdout and what reached the terminal."""
    leader, follower = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "v6_pipeline.cli", *args],
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
        env={**os.environ, **env},
    )
    os.close(follower)
    seen = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end closed
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out, _ = proc.communicate(timeout=180)
    reader.join(10)
    os.close(leader)
    return proc.returncode, out, seen.decode(errors="replace")


def test_reconcile_at_a_terminal_keeps_dagsters_event_log_in_a_file(
    gateway: GatewayThread, tmp_path: Path
) -> None:
    Lake(tmp_path / "lake").append_position_updates(demo_position_updates(datetime.now(UTC)))
    env = settings(gateway, tmp_path / "lake", tmp_path / "home")
    code, out, terminal = on_a_terminal("reconcile", env=env)
    assert code == 2, out + terminal
    assert "NAKED: DU222 SPY 2026-12-18 580 P" in out
    # Dagster's event log of the run is not on the terminal, but in the file it names.
    assert terminal == ""
    named = re.search(r"^Dagster's event log: (\S+) \(on stderr with", out, re.M)
    assert named, out
    log = Path(named.group(1))
    assert log.parent == tmp_path / "home" / "logs"
    events = log.read_text()
    assert "STEP_FAILURE" in events
    assert "1 naked position(s): NAKED: DU222 SPY" in events  # the step's failure: the legs
    assert "NAKED: DU222 SPY 2026-12-18 580 P" in events


def test_reconcile_shows_dagsters_event_log_with_v(gateway: GatewayThread, tmp_path: Path) -> None:
    Lake(tmp_path / "lake").append_position_updates(demo_position_updates(datetime.now(UTC)))
    env = settings(gateway, tmp_path / "lake", tmp_path / "home")
    code, out, terminal = on_a_terminal("reconcile", "-v", env=env)
    assert code == 2, out + terminal
    assert "STEP_FAILURE" in terminal
    assert "DEBUG" in terminal  # the whole stream
    assert "Dagster's event log" not in out
    assert not (tmp_path / "home" / "logs").exists()


def test_reconcile_exits_1_when_ib_fails(gateway: GatewayThread, tmp_path: Path) -> None:
    Lake(tmp_path / "lake").append_position_updates(demo_position_updates(datetime.now(UTC)))
    gateway.set_faults(["connectivity-lost"])
    proc = v6("reconcile", env=settings(gateway, tmp_path / "lake", tmp_path / "home"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "error 1100" in proc.stdout
    assert "No discrepancy rows were written" in proc.stdout


def test_reconcile_names_a_missing_lake(gateway: GatewayThread, tmp_path: Path) -> None:
    proc = v6("reconcile", env=settings(gateway, tmp_path / "typo", tmp_path / "home"))
    assert proc.returncode == 1
    assert str(tmp_path / "typo" / "position_updates") in proc.stdout


def test_reconcile_rejects_a_bad_window(tmp_path: Path) -> None:
    proc = v6("reconcile", "--window", "2026-11-25 14:05", env={"DAGSTER_HOME": ""})
    assert proc.returncode == 1
    assert "not a window key" in proc.stdout


def test_unknown_command_is_a_usage_error() -> None:
    proc = v6("frobnicate")
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


PARTITION_KEYS = """
{ assetNodeOrError(assetKey: {path: ["position_discrepancies"]}) {
    ... on AssetNode { partitionKeys } } }
"""


def test_demo_ui_serves_its_windows_ends_well_and_ctrl_c_stops_everything(
    tmp_path: Path,
) -> None:
    port = free_port()
    with webhook() as hook:
        proc = subprocess.Popen(
            [sys.executable, "-m", "v6_pipeline.cli", "demo", "--ui", "--ui-port", str(port),
             "--dir", str(tmp_path / "demo"), "--fix-after", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            cwd=Path(__file__).parents[1],  # beside the repository's own dagster.yaml
            env={**os.environ, "V6_ALERT_URLS": hook.apprise_url},
        )  # fmt: skip
        try:
            info = json.loads(wait_for_ui(port, proc))
            assert "dagster_webserver_version" in info
            keys = graphql(port, PARTITION_KEYS)["data"]["assetNodeOrError"]["partitionKeys"]
            closed = _wait_for_closing_row(tmp_path / "demo" / "lake", deadline_s=60)
            time.sleep(12)  # two more ticks of the daemon's sensor (every 5 s)
        finally:
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
            out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    # The demo's own tick and the daemon's sensor share one alert state: one page.
    pages = [m["title"] for m in hook.received if "naked" in m["title"]]
    assert len(pages) == 1, [m["title"] for m in hook.received]
    # The UI's windows start at the one the demo judged: no month of empty windows.
    judged = re.search(r"Materializing window (\S+) \(UTC\)", out).group(1)
    assert keys[0] == judged
    assert len(keys) <= 3
    # The story's end: `v6 stream` closed the naked leg in the log from IB's own answer,
    # so later windows are clean; it heartbeats, and Ctrl-C stopped it too.
    assert "started `v6 stream`" in out
    assert closed, out
    demo = tmp_path / "demo"
    stream_log = (demo / "stream.log").read_text()
    assert "repair: DU222 SPY 20261218 580 P (OPT) conid 500004: Delta -2 -> IB 0" in stream_log
    assert pl.read_delta(str(tmp_path / "demo" / "lake" / "stream_status")).height >= 1
    assert "v6 stream: ran " in stream_log, stream_log  # its summary: it stopped cleanly
    # The terminal shows what a person follows; Dagster's own output is in the file named.
    assert (
        f"Dagster's own output (webserver, daemon, each run's events): {demo / 'dagster.log'}"
        in out
    )
    assert "v6 stream: repair: DU222 SPY 20261218 580 P (OPT) conid 500004: Delta -2 -> IB 0" in out
    for noise in (" DEBUG ", "Traceback", "STEP_FAILURE", "dagster - INFO"):
        assert noise not in out, out
    dagster_log = (demo / "dagster.log").read_text()
    assert "Serving dagster-webserver" in dagster_log or "dagster-webserver" in dagster_log
    # Nothing a newcomer would take for a fault.
    assert "SupersessionWarning" not in out
    assert "Found a dagster instance configuration" not in out
    gateway_port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", out).group(1))
    for stopped in (port, gateway_port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", stopped)) != 0, f"port {stopped} still open"


def _wait_for_closing_row(lake: Path, *, deadline_s: float) -> bool:
    """Whether the naked leg's latest `position_updates` row became 0 within the deadline."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        book = pl.read_delta(str(lake / "position_updates"))
        leg = book.filter((pl.col("account") == "DU222") & (pl.col("conid") == 500004))
        if leg.sort("timestamp")["position"].to_list()[-1] == 0:
            return True
        time.sleep(0.5)
    return False


def test_reconcile_names_a_bad_setting_without_a_traceback(tmp_path: Path) -> None:
    proc = v6("reconcile", env={"V6_SEC_TYPES": "FOO", "DAGSTER_HOME": str(tmp_path / "home")})
    assert proc.returncode == 1
    assert "v6 reconcile: V6_SEC_TYPES names FOO" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_failing_step_prints_its_cause_not_dagsters_wrapper(
    gateway: GatewayThread, tmp_path: Path
) -> None:
    Lake(tmp_path / "lake").append_position_updates(demo_position_updates(datetime.now(UTC)))
    (tmp_path / "lake" / "ib_position_snapshots").write_text("not a Delta table")
    proc = v6("reconcile", env=settings(gateway, tmp_path / "lake", tmp_path / "home"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = next(line for line in proc.stdout.splitlines() if line.startswith("FAILED"))
    assert "ib_position_snapshots" in failed
    assert "Error occurred while executing" not in failed
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("command", ["demo", "reconcile"])
def test_a_file_where_a_folder_belongs_is_a_sentence(tmp_path: Path, command: str) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    args = ("demo", "--dir", str(afile)) if command == "demo" else ("reconcile",)
    proc = v6(*args, env={"DAGSTER_HOME": str(afile)})
    assert proc.returncode == 1
    assert "is a file" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        # A Dagster stack trace before issue #20.
        ("V6_IB_PORT", "abc", "V6_IB_PORT='abc' is not a whole number: write a whole number"),
        # An OverflowError traceback.
        ("V6_ALERT_SILENCE_S", "1e20", "V6_ALERT_SILENCE_S='1e20' is over ten years"),
        # Silently the default (data/lake), or port 4002.
        ("V6_LAKE_DIR", " ", "V6_LAKE_DIR=' ' is blank: unset it to use the default (data/lake)"),
        ("V6_IB_PORT", "٤٠٠٢", "V6_IB_PORT='٤٠٠٢' is not a whole number (ASCII digits only)"),
    ],
)
def test_reconcile_names_any_bad_setting_in_one_sentence(
    tmp_path: Path, variable: str, value: str, says: str
) -> None:
    env = {variable: value, "DAGSTER_HOME": str(tmp_path / "home"), "V6_IB_TIMEOUT_S": "2"}
    proc = v6("reconcile", env=env, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"v6 reconcile: {says}"), proc.stdout
    assert len(proc.stdout.strip().splitlines()) == 1, proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_lake_init_refuses_a_blank_lake_dir(tmp_path: Path) -> None:
    proc = v6("lake", "init", env={"V6_LAKE_DIR": " "}, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith("v6 lake: V6_LAKE_DIR=' ' is blank: unset it"), proc.stdout
    assert list(tmp_path.iterdir()) == []  # no table under a folder named " "
    # Trimmed, as every setting is.
    proc = v6("lake", "init", env={"V6_LAKE_DIR": f" {tmp_path / 'lake'} "}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "lake" / "position_updates" / "_delta_log").is_dir()


def test_stream_names_a_bad_setting_in_one_sentence(tmp_path: Path) -> None:
    proc = v6("stream", "--once", env={"V6_STREAM_CLIENT_ID": "٦٠٧"}, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.startswith(
        "v6 stream: V6_STREAM_CLIENT_ID='٦٠٧' is not a whole number (ASCII digits only)"
    ), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
