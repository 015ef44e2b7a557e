"""`v6 doctor` against the emulator over a real socket, real Delta tables and a real
Dagster instance: a healthy set-up passes every item; each fault the emulator plays and
each first-hour misconfiguration is one ✗ line naming its fix; nothing is written."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import InstigatorStatus
from ib_async import IB

from v6_pipeline.cli import main
from v6_pipeline.doctor import gateway as doctor_gateway
from v6_pipeline.doctor.lake import PROBE_PREFIX
from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline.lake import Lake
from v6_pipeline_tests.doctor.support import (
    Setup,
    book_rows,
    daemon_beats,
    healthy,
    ticked,
    tree,
)
from v6_pipeline_tests.support import DEMO, free_port, v6

Lines = dict[str, tuple[str, str]]  # item -> (mark, text)


@pytest.fixture
def setup(
    tmp_path: Path, demo_gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Setup]:
    made = healthy(tmp_path, demo_gateway.port)
    for name, value in made.env.items():
        monkeypatch.setenv(name, value)
    before = tree(made.lake_dir)
    yield made
    # Whatever the doctor found, it wrote nothing to the tables and left no probe.
    if made.lake_dir.is_dir():
        assert tree(made.lake_dir) == before
        assert not list(made.lake_dir.glob(f"{PROBE_PREFIX}*"))


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Lines, str]:
    capsys.readouterr()
    code = main(["doctor", "--timeout", "3", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert "never retrieved" not in err
    lines: Lines = {}
    for line in out.splitlines():
        mark, _, rest = line.partition(" ")
        item, sep, text = rest.partition(": ")
        if sep and mark in "✓✗!-":
            lines.setdefault(item, (mark, text))
    return code, lines, out


def failed(lines: Lines) -> list[str]:
    return [item for item, (mark, _) in lines.items() if mark == "✗"]


def test_a_healthy_set_up_passes_every_item(setup: Setup) -> None:
    started = time.monotonic()
    proc = v6("doctor", env=setup.env)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    marks = [line[0] for line in out.splitlines()[:-1]]
    assert set(marks) == {"✓", "!"}, out
    assert len(marks) == 20
    assert out.splitlines()[-1] == "all checks passed"
    for item in (
        "settings",
        "gateway reachable",
        "API answering",
        "server version: 178",
        "client id free: client id 606 was accepted",
        "managed accounts: the gateway manages DU111, DU222; Delta holds open positions in "
        "DU111, DU222",
        "snapshot: 6 position(s) in 2 account(s)",
        "lake readable",
        "lake writable: a probe object was written, read back and removed",
        "position_updates",
        "read checkpoint: at table version",
        "Dagster instance",
        "dagster-daemon: heartbeating",
        "reconciliation_schedule: running",
        "discrepancy_alert_sensor: running",
        "v6 stream: The position stream doctor-test is alive",
    ):
        assert f"✓ {item}" in out, item
    # Read-Only API is never probed: the reminder and the menu path.
    assert (
        "! Read-Only API: not probed (a probe would act on a writable gateway): make sure it "
        "is on — Configure → Settings → API → Settings: tick 'Read-Only API'"
    ) in out
    assert proc.stderr == ""
    assert time.monotonic() - started < 60


# The faults the emulator plays on a snapshot: the line that fails, and what it says.
SNAPSHOT_FAULTS = [
    ("no-position-end", "snapshot", ["no positionEnd", "raise V6_IB_TIMEOUT_S"]),
    ("delay:6", "snapshot", ["did not finish", "within 3 s", "V6_IB_TIMEOUT_S"]),
    ("drop-mid-positions", "snapshot", ["closed the connection", "Check the gateway's log"]),
    ("malformed-position", "snapshot", ["could not decode", "ib_async version"]),
    ("nonfinite-position", "snapshot", ["not a finite number", "Check the gateway's log"]),
    ("huge-conid", "snapshot", ["conid", "64-bit"]),
    ("connectivity-lost", "snapshot", ["error 1100", "check the gateway's login and network"]),
    ("error-mid-positions:1101", "snapshot", ["error 1101", "data lost"]),
    ("error-mid-positions:504", "snapshot", ["error 504"]),
    ("error-mid-positions:2110", "snapshot", ["error 2110"]),
    ("error-mid-positions:1300", "snapshot", ["error 1300"]),
    ("client-id-in-use", "client id free", ["client id 606 is in use", "set V6_IB_CLIENT_ID"]),
]


@pytest.mark.parametrize(("fault", "item", "said"), SNAPSHOT_FAULTS, ids=lambda v: str(v))
def test_each_fault_of_the_emulator_is_one_line_with_its_fix(
    setup: Setup,
    demo_gateway: GatewayThread,
    capsys: pytest.CaptureFixture[str],
    fault: str,
    item: str,
    said: list[str],
) -> None:
    demo_gateway.set_faults([fault])
    code, lines, out = doctor(capsys)
    assert code == 1
    assert failed(lines) == [item], out
    for words in said:
        assert words in lines[item][1], out
    if item == "client id free":
        assert lines["snapshot"][0] == "-"


def test_a_restarting_gateway_is_unreachable_with_what_to_start(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Its own gateway: a restart outlives the fault's removal.
    with GatewayThread(DEMO) as restarting:
        monkeypatch.setenv("V6_IB_PORT", str(restarting.port))
        restarting.set_faults(["restart:30"])
        code, lines, out = doctor(capsys)
    assert code == 1
    assert failed(lines) == ["gateway reachable"], out
    text = lines["gateway reachable"][1]
    assert "nothing accepts connections" in text
    assert "Enable ActiveX and Socket Clients" in text
    assert "set V6_IB_PORT" in text
    for later in ("API answering", "server version", "client id free", "snapshot"):
        assert lines[later][0] == "-"


# Faults that leave a snapshot whole (a repeated key keeps its last value, a notice that
# keeps data, an average cost that is only informational) or that touch only position
# pushes, which the doctor does not subscribe to: no false alarm.
HARMLESS = [
    "duplicate-positions",
    "nonfinite-avg-cost",
    "error-mid-positions:1102",
    "error-mid-positions:10197",
    "repeat-updates",
    "unknown-account",
    "huge-conid-push",
]


@pytest.mark.parametrize("fault", HARMLESS)
def test_faults_that_leave_the_snapshot_whole_pass(
    setup: Setup, demo_gateway: GatewayThread, capsys: pytest.CaptureFixture[str], fault: str
) -> None:
    demo_gateway.set_faults([fault])
    code, lines, out = doctor(capsys)
    assert code == 0, out
    assert lines["snapshot"][1].startswith("6 position(s)")


@contextlib.contextmanager
def listener(behaviour: str) -> Iterator[int]:
    """A TCP port that takes connections and then says nothing (`silent`: the API not
    enabled, or TWS waiting on its 'accept incoming connection?' dialog) or hangs up at
    once (`close`: a gateway refusing an address that is not a trusted IP)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            if behaviour == "close":
                conn.close()
            else:
                held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def test_the_api_not_enabled(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with listener("silent") as port:
        monkeypatch.setenv("V6_IB_PORT", str(port))
        code, lines, out = doctor(capsys)
    assert code == 1
    assert lines["gateway reachable"][0] == "✓"
    mark, text = lines["API answering"]
    assert mark == "✗", out
    assert "sent no API handshake within 3 s" in text
    assert "Configure → Settings → API → Settings: tick 'Enable ActiveX and Socket Clients'" in text
    assert "Trusted IPs" in text  # the dialog a trusted IP skips
    assert lines["snapshot"][0] == "-"


def test_this_machine_not_a_trusted_ip(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with listener("close") as port:
        monkeypatch.setenv("V6_IB_PORT", str(port))
        code, lines, out = doctor(capsys)
    assert code == 1
    mark, text = lines["API answering"]
    assert mark == "✗", out
    assert "closed the connection without an API handshake" in text
    assert "(127.0.0.1) is probably not a trusted IP" in text
    assert "Configure → Settings → API → Settings → Trusted IPs" in text


def test_the_port_is_the_tws_one(
    setup: Setup,
    demo_gateway: GatewayThread,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # IB's ports are stand-ins here: the gateway listens on its own, TWS's is closed.
    tws = free_port()
    monkeypatch.setattr(
        doctor_gateway, "API_PORTS", {demo_gateway.port: "IB Gateway paper", tws: "TWS paper"}
    )
    monkeypatch.setenv("V6_IB_PORT", str(tws))
    code, lines, out = doctor(capsys)
    assert code == 1
    assert failed(lines) == ["gateway reachable"], out
    assert (
        f"IB Gateway paper's port {demo_gateway.port} is open on 127.0.0.1: set "
        f"V6_IB_PORT={demo_gateway.port}"
    ) in lines["gateway reachable"][1]


def test_another_tool_holds_the_client_id(
    setup: Setup, demo_gateway: GatewayThread, capsys: pytest.CaptureFixture[str]
) -> None:
    other = IB()
    other.connect("127.0.0.1", demo_gateway.port, clientId=606, timeout=5, readonly=True)
    try:
        code, lines, out = doctor(capsys)
    finally:
        other.disconnect()
    assert code == 1
    assert failed(lines) == ["client id free"], out
    assert "client id 606 is in use by another API connection (error 326)" in out
    assert "set V6_IB_CLIENT_ID to an id no other API client uses" in out


def test_the_login_does_not_manage_an_account_delta_holds(
    tmp_path: Path,
    demo_gateway: GatewayThread,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    made = healthy(tmp_path, demo_gateway.port)
    Lake(made.lake_dir).append_position_updates(
        book_rows(datetime.now(UTC), accounts={"DU222": "DU999"})
    )
    for name, value in made.env.items():
        monkeypatch.setenv(name, value)
    before = tree(made.lake_dir)
    code, lines, out = doctor(capsys)
    assert code == 1
    assert failed(lines) == ["managed accounts"], out
    text = lines["managed accounts"][1]
    assert "Delta holds open positions in DU999, which this login does not manage" in text
    assert "(it manages DU111, DU222)" in text
    assert "log in to the gateway as the user who manages DU999" in text
    assert tree(made.lake_dir) == before


def test_v6_accounts_names_an_account_the_login_does_not_manage(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("V6_ACCOUNTS", "DU111,DU999")
    _, lines, out = doctor(capsys)
    assert failed(lines) == ["managed accounts"], out
    assert "V6_ACCOUNTS names DU999, which this login does not manage" in out
    assert "set V6_ACCOUNTS to accounts among DU111, DU222" in out


def test_a_typo_in_the_alert_url(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("V6_ALERT_URLS", "jsno://127.0.0.1:9/hook")
    code, lines, out = doctor(capsys)
    assert code == 1
    assert failed(lines) == ["alert sinks"], out
    assert "V6_ALERT_URLS: entry 1 (jsno://127.0.0.1:9) is not a URL Apprise can send to" in out


def test_bad_settings_are_all_named_at_once(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("V6_IB_PORT", "7497x")
    monkeypatch.setenv("V6_ABS_TOL", "nan")
    monkeypatch.setenv("V6_STREAM_CLIENT_ID", "606")
    code, lines, out = doctor(capsys)
    assert code == 1
    settings = [line for line in out.splitlines() if line.startswith("✗ settings: ")]
    assert len(settings) == 3, out
    assert "V6_IB_PORT='7497x' is not a whole number" in out
    assert "V6_ABS_TOL='nan' must be a finite number" in out
    assert "V6_IB_CLIENT_ID and V6_STREAM_CLIENT_ID are both 606" in out
    assert lines["gateway reachable"][0] == "-"
    assert lines["lake writable"][0] == "✓"  # the rest is still checked


def test_the_lake_on_a_read_only_mount(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mount = subprocess.run(["mount", "--bind", str(setup.lake_dir), str(setup.lake_dir)])
    if mount.returncode != 0:
        pytest.skip("cannot bind-mount here (needs CAP_SYS_ADMIN)")
    try:
        remount = ["mount", "-o", "remount,ro,bind", str(setup.lake_dir)]
        assert subprocess.run(remount).returncode == 0
        code, lines, out = doctor(capsys)
    finally:
        subprocess.run(["umount", str(setup.lake_dir)], check=True)
    assert code == 1
    assert failed(lines) == ["lake writable"], out
    text = lines["lake writable"][1]
    assert "Read-only file system" in text
    assert "mount it read-write" in text
    assert lines["position_updates"][0] == "✓"  # still readable


def test_the_lake_does_not_exist(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = setup.lake_dir.parent / "typo"
    monkeypatch.setenv("V6_LAKE_DIR", str(missing))
    code, lines, _ = doctor(capsys)
    assert code == 1
    assert f"`V6_LAKE_DIR={missing} v6 lake init`" in lines["lake readable"][1]
    assert lines["managed accounts"][0] == "✗"  # Delta's accounts cannot be known
    assert not missing.exists()


def test_no_position_updates(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = setup.lake_dir.parent / "empty"
    empty.mkdir()
    monkeypatch.setenv("V6_LAKE_DIR", str(empty))
    _, lines, out = doctor(capsys)
    assert lines["position_updates"][0] == "✗", out
    assert "v6 lake init" in lines["position_updates"][1]
    assert list(empty.iterdir()) == []


def test_a_damaged_read_checkpoint_is_named_not_repaired(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    (data,) = (setup.lake_dir / "_v6_checkpoints").rglob("*.parquet")
    good, stat = data.read_bytes(), data.stat()
    data.write_bytes(good[:-20] + b"\0" * 20)
    damaged = tree(setup.lake_dir)
    _, lines, out = doctor(capsys)
    assert failed(lines) == ["read checkpoint"], out
    assert "do not match the checksum" in lines["read checkpoint"][1]
    assert "the next run removes and rebuilds it by itself" in lines["read checkpoint"][1]
    assert tree(setup.lake_dir) == damaged  # named, not removed
    # Put back as it was, so that the fixture's check compares like with like.
    data.write_bytes(good)
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_no_dagster_home(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DAGSTER_HOME")
    _, lines, out = doctor(capsys)
    assert failed(lines) == ["Dagster instance"], out
    assert "export DAGSTER_HOME=" in lines["Dagster instance"][1]
    assert lines["dagster-daemon"][0] == "-"


def test_the_daemon_stopped_heartbeating(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    with dg.DagsterInstance.from_config(str(setup.home)) as instance:
        daemon_beats(instance, age_s=600)
    _, lines, out = doctor(capsys)
    assert failed(lines) == ["dagster-daemon"], out
    # 600 s when the beat was written, and the doctor reads it a moment later.
    age = re.search(r"scheduler: (\d+) s ago", lines["dagster-daemon"][1])
    assert age, lines["dagster-daemon"][1]
    assert 600 <= int(age.group(1)) <= 660
    assert "`dagster-daemon run`" in lines["dagster-daemon"][1]


def test_a_stopped_sensor(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    with dg.DagsterInstance.from_config(str(setup.home)) as instance:
        ticked(instance, "discrepancy_alert_sensor", status=InstigatorStatus.STOPPED)
    _, lines, out = doctor(capsys)
    assert failed(lines) == ["discrepancy_alert_sensor"], out
    assert (
        "stopped: start it in the UI (Automation → discrepancy_alert_sensor → toggle on) or "
        "with `dagster sensor start discrepancy_alert_sensor`"
    ) in out


def test_a_schedule_that_stopped_ticking(tmp_path: Path) -> None:
    from v6_pipeline.doctor.instance import instigator_lines
    from v6_pipeline.run.instance import prepare_home

    with dg.DagsterInstance.from_config(str(prepare_home(tmp_path))) as instance:
        ticked(instance, "reconciliation_schedule", age_s=3600)
        ticked(instance, "discrepancy_alert_sensor")
        lines = {line.item: line for line in instigator_lines(instance, timeout_s=5)}
    assert lines["discrepancy_alert_sensor"].mark == "✓"
    stale = lines["reconciliation_schedule"]
    assert stale.mark == "✗"
    assert "its newest tick is 3600 s old" in stale.text
    assert "`dagster-daemon run`" in stale.text
    never = lines["reconciliation_silence_sensor"]
    assert never.mark == "✗"
    assert never.text.startswith("never ticked in this instance")


def test_v6_stream_not_heartbeating(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("V6_STREAM_DEAD_AFTER_S", "0.001")
    _, lines, out = doctor(capsys)
    assert failed(lines) == ["v6 stream"], out
    text = lines["v6 stream"][1]
    assert "The position stream doctor-test last sent a heartbeat" in text
    assert "restart it" in text
