"""Shared by the alert tests: observations built in a trader's words, a driver that
carries the state from tick to tick (through JSON, as a sensor cursor does), and a real
local HTTP server that receives Apprise's JSON webhook."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from v6_pipeline.alerts.delivery import Envelope
from v6_pipeline.alerts.incidents import Alert, Policy, step
from v6_pipeline.alerts.observations import Leg, Observation, RunFailed, RunSucceeded, WindowJudged
from v6_pipeline.alerts.state import AlertKind, AlertState

T0 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # a Wednesday
WINDOW = timedelta(minutes=5)
UNREACHABLE = "GatewayUnreachableError"
UNREACHABLE_SENTENCE = "Cannot reach IB Gateway/TWS at 127.0.0.1:4002 (connection refused)."


def leg(
    conid: int = 500123,
    *,
    account: str = "DU111",
    delta: float | None = -3.0,
    ib: float = 0.0,
    type: str = "NAKED_POSITION",
    symbol: str = "SPY",
) -> Leg:
    return Leg(
        account=account,
        conid=conid,
        type=type,
        ib_position=ib,
        delta_position=delta,
        symbol=symbol,
        sec_type="OPT",
        expiry="20270115",
        strike=600.0,
        right="C",
        details=f"Delta Lake holds {delta:g} of {symbol} but IB reports none."
        if delta is not None
        else "IB holds it; Delta Lake has no row.",
    )


def key(start: datetime) -> str:
    return start.astimezone(UTC).strftime("%Y-%m-%d-%H:%M")


def run_of(moment: datetime) -> str:
    return f"run{moment:%d%H%M}"


def window(start: datetime, *legs: Leg, live: bool = True, run_id: str = "") -> WindowJudged:
    """Window `[start, start + 5 min)` judged from a snapshot taken 2 s after it closed."""
    taken = start + WINDOW + timedelta(seconds=2)
    return WindowJudged(
        window_key=key(start),
        as_of=taken,
        judged_at=taken + timedelta(seconds=3),
        legs=tuple(legs),
        live=live,
        run_id=run_id or run_of(start),
    )


def failed(at: datetime, cause: str = UNREACHABLE, *, live: bool = True) -> RunFailed:
    return RunFailed(
        run_id=f"{run_of(at)}-{cause[:4]}",
        failed_at=at,
        cause=cause,
        message=UNREACHABLE_SENTENCE if cause == UNREACHABLE else f"{cause} happened.",
        live=live,
        window_key=key(at - WINDOW),
    )


def succeeded(at: datetime) -> RunSucceeded:
    return RunSucceeded(run_id=f"{run_of(at)}-ok", succeeded_at=at, window_key=key(at - WINDOW))


@dataclass
class Driver:
    """A sensor in miniature: each tick restores the state from JSON and saves it back."""

    policy: Policy
    cursor: str | None = None
    alerts: list[Alert] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def tick(self, now: datetime, *observations: Observation) -> list[Alert]:
        result = step(AlertState.from_json(self.cursor), observations, now=now, policy=self.policy)
        self.cursor = result.state.to_json()
        self.alerts.extend(result.alerts)
        self.notes.extend(result.notes)
        return result.alerts

    @property
    def state(self) -> AlertState:
        return AlertState.from_json(self.cursor)

    def kinds(self) -> list[tuple[str, AlertKind]]:
        return [(a.incident.kind.value, a.kind) for a in self.alerts]


def naked_envelope(now: datetime = T0, *, conid: int = 1) -> Envelope:
    """The envelope of the alert a naked leg in the window that closed before `now` raises."""
    d = Driver(Policy(remind_after=None))
    [alert] = d.tick(now, window(now - 2 * WINDOW, leg(conid)))
    return Envelope.of(alert, ui_url="http://127.0.0.1:3000")


@dataclass
class Webhook:
    """A real HTTP server on 127.0.0.1 recording the JSON bodies posted to it."""

    port: int
    received: list[dict] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    status: int = 200

    @property
    def apprise_url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ping/abc"


@contextmanager
def webhook(port: int = 0, *, hook: Webhook | None = None) -> Iterator[Webhook]:
    """Serve on `port` (0 = a free one) until the block ends; pass `hook` to restart a
    stopped server on its old port with its recordings."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            recorder.received.append(json.loads(self.rfile.read(length)))
            self._answer()

        def do_GET(self) -> None:
            self._answer()

        def _answer(self) -> None:
            recorder.requests.append((self.command, self.path))
            self.send_response(recorder.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", hook.port if hook else port), Handler)
    server.daemon_threads = True
    recorder = hook or Webhook(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def trickle(every_s: float = 2.0) -> Iterator[int]:
    """A server on 127.0.0.1 that answers every request one byte every `every_s`, until
    the block ends: a per-read timeout never fires on it. Yields its port; its threads
    are named `trickle-*`."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    handlers: list[threading.Thread] = []

    def drip(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                while not stop.wait(every_s):
                    conn.sendall(b"X")
            except OSError:
                pass  # the client went away

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            handler = threading.Thread(target=drip, args=(conn,), name="trickle-conn")
            handlers.append(handler)
            handler.start()

    acceptor = threading.Thread(target=accept, name="trickle-accept")
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        acceptor.join()
        for handler in handlers:
            handler.join()
        listener.close()
