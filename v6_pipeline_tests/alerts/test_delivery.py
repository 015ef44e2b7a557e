"""Delivery through Apprise to a real local HTTP server (Apprise's `json://` webhook):
content, retries, the outbox across ticks, one dead sink beside a live one, giving up,
bad URLs, and the heartbeat ping."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from v6_pipeline.alerts import delivery
from v6_pipeline.alerts.delivery import (
    MAX_PENDING_PER_SINK,
    Courier,
    Outbox,
    parse_urls,
    ping,
    redact,
)
from v6_pipeline_tests.alerts.support import T0, WINDOW, naked_envelope, trickle, webhook

DAY = timedelta(days=1)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port nothing listens on (bound, never listening, so no one else takes it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def test_an_alert_arrives_as_apprise_json_with_its_words() -> None:
    env = naked_envelope()
    with webhook() as hook:
        courier = Courier([hook.apprise_url], give_up_after=DAY)
        outbox, outcomes = courier.post(Outbox(), [env], now=T0)
    assert outbox.pending == ()
    assert [(o.status, o.url, o.delivered, o.attempts) for o in outcomes] == [
        ("raised", None, None, 0),
        ("delivered", f"json://127.0.0.1:{hook.port}", True, 1),
    ]
    [posted] = hook.received
    assert posted["title"] == env.message.title
    assert posted["title"].startswith("CRITICAL: 1 naked position(s) in DU111")
    assert posted["message"] == env.message.body
    assert (
        "DU111  SPY 2027-01-15 600 C (conid 1): NAKED_POSITION, IB 0, Delta -3" in posted["message"]
    )
    assert posted["type"] == "failure"
    assert hook.requests == [("POST", "/hook")]


def test_a_down_sink_is_retried_kept_pending_and_delivered_later_while_another_got_it_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = naked_envelope()
    with webhook() as up:
        with webhook() as down:
            pass  # its port is now closed: the sink is down
        courier = Courier([down.apprise_url, up.apprise_url], give_up_after=DAY, backoff_s=0.05)
        with caplog.at_level(logging.WARNING, logger="v6_pipeline.alerts"):
            outbox, outcomes = courier.post(Outbox(), [env], now=T0)
        assert len(up.received) == 1  # the live sink did not wait for the dead one
        by_url = {o.url: o for o in outcomes if o.url}
        failed = by_url[f"json://127.0.0.1:{down.port}"]
        assert (failed.status, failed.delivered, failed.attempts) == ("pending", False, 3)
        assert "Connection error" in (failed.error or "")
        assert by_url[f"json://127.0.0.1:{up.port}"].status == "delivered"
        assert any("not delivered to json://127.0.0.1" in r.message for r in caplog.records)

        # The outbox rides in the cursor: JSON, and without the URL (it holds tokens).
        cursor = outbox.to_json()
        assert f":{down.port}" not in cursor
        outbox = Outbox.from_json(cursor)
        [pending] = outbox.pending
        assert pending.tries == 1
        assert pending.next_at == T0 + timedelta(minutes=1)

        # Before its retry time nothing is tried; the down sink stays down meanwhile.
        outbox, outcomes = courier.flush(outbox, now=T0 + timedelta(seconds=30))
        assert (outcomes, len(outbox.pending)) == ([], 1)
        outbox, outcomes = courier.flush(outbox, now=T0 + timedelta(minutes=1))
        assert [o.status for o in outcomes] == ["pending"]
        assert outbox.pending[0].next_at == T0 + timedelta(minutes=3)  # backing off

        with webhook(hook=down):  # back, on its old port
            outbox, outcomes = courier.flush(outbox, now=T0 + timedelta(minutes=3))
        assert [(o.status, o.url) for o in outcomes] == [
            ("delivered", f"json://127.0.0.1:{down.port}")
        ]
        assert outbox.pending == ()
        assert down.received[0]["title"] == env.message.title
        assert len(up.received) == 1  # not sent twice


def test_a_sink_that_never_answers_does_not_hold_up_another() -> None:
    with socket.socket() as blackhole:  # accepts connections into its backlog, never replies
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(8)
        silent = f"json://127.0.0.1:{blackhole.getsockname()[1]}/hook"
        with webhook() as up:
            # The budget covers the delivery process's start (~1 s on a loaded machine).
            courier = Courier([silent, up.apprise_url], give_up_after=DAY, tick_budget_s=5)
            started = time.monotonic()
            outbox, outcomes = courier.post(Outbox(), [naked_envelope()], now=T0)
            took = time.monotonic() - started
    assert len(up.received) == 1
    assert sorted(o.status for o in outcomes if o.url) == ["delivered", "pending"]
    assert len(outbox.pending) == 1
    assert took < 15  # bounded by the tick's budget, not by Apprise's 4 s timeouts x 3


def test_an_http_error_is_a_failed_delivery_with_the_reason() -> None:
    with webhook() as hook:
        hook.status = 500
        courier = Courier([hook.apprise_url], give_up_after=DAY, backoff_s=0.01)
        outbox, outcomes = courier.post(Outbox(), [naked_envelope()], now=T0)
    assert len(hook.received) == 3  # retried within the tick
    assert outcomes[-1].status == "pending"
    assert "500" in (outcomes[-1].error or "")
    assert len(outbox.pending) == 1


def test_an_alert_undelivered_past_give_up_is_logged_as_lost(
    closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    courier = Courier(
        [f"json://127.0.0.1:{closed_port}/hook"], give_up_after=timedelta(hours=1), backoff_s=0.01
    )
    outbox, _ = courier.post(Outbox(), [naked_envelope()], now=T0)
    outbox, outcomes = courier.flush(outbox, now=T0 + timedelta(minutes=59))
    assert [o.status for o in outcomes] == ["pending"]
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="v6_pipeline.alerts"):
        outbox, outcomes = courier.flush(outbox, now=T0 + timedelta(hours=1))
    assert outbox.pending == ()
    [lost] = outcomes
    assert (lost.status, lost.delivered) == ("lost", False)
    assert "V6_ALERT_GIVE_UP_S" in (lost.error or "")
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.message.startswith("ALERT LOST: open alert naked-")


def test_a_pending_alert_whose_url_was_removed_is_lost_not_kept_forever(closed_port: int) -> None:
    old = Courier([f"json://127.0.0.1:{closed_port}/hook"], give_up_after=DAY, backoff_s=0.01)
    outbox, _ = old.post(Outbox(), [naked_envelope()], now=T0)
    with webhook() as hook:
        new = Courier([hook.apprise_url], give_up_after=DAY)
        outbox, outcomes = new.flush(outbox, now=T0 + DAY / 2)
    assert outbox.pending == ()
    assert [o.status for o in outcomes] == ["lost"]
    assert "no longer in V6_ALERT_URLS" in (outcomes[0].error or "")


def test_the_outbox_is_bounded(closed_port: int) -> None:
    courier = Courier(
        [f"json://127.0.0.1:{closed_port}/hook"], give_up_after=DAY, attempts_per_tick=1
    )
    envelopes = [naked_envelope(T0 + n * WINDOW, conid=n) for n in range(MAX_PENDING_PER_SINK + 3)]
    outbox, outcomes = courier.post(Outbox(), envelopes, now=T0 + DAY / 2)
    assert len(outbox.pending) == MAX_PENDING_PER_SINK
    assert [o.status for o in outcomes].count("lost") == 3


def test_a_busy_tick_to_healthy_sinks_loses_no_alert() -> None:
    envelopes = [naked_envelope(T0 + n * WINDOW, conid=n) for n in range(9)]
    with webhook() as a, webhook() as b, webhook() as c:
        courier = Courier([h.apprise_url for h in (a, b, c)], give_up_after=DAY)
        outbox, outcomes = courier.post(Outbox(), envelopes, now=T0 + DAY / 2)
    statuses = [o.status for o in outcomes if o.url]
    assert (statuses.count("delivered"), statuses.count("lost")) == (27, 0)
    assert outbox.pending == ()
    for hook in (a, b, c):  # every alert, in order, at every sink
        assert [p["title"] for p in hook.received] == [e.message.title for e in envelopes]


def test_a_dead_sink_keeps_a_bounded_outbox_and_costs_the_live_one_nothing(
    closed_port: int,
) -> None:
    dead = f"json://127.0.0.1:{closed_port}/hook"
    busy = MAX_PENDING_PER_SINK + 5

    def envelopes(first: int) -> list:
        return [naked_envelope(T0 + n * WINDOW, conid=n) for n in range(first, first + busy)]

    with webhook() as up:
        courier = Courier([dead, up.apprise_url], give_up_after=DAY, attempts_per_tick=1)
        outbox, outcomes = courier.post(Outbox(), envelopes(0), now=T0 + DAY / 2)
        assert len(up.received) == busy
        lost = [o for o in outcomes if o.status == "lost"]
        assert {o.url for o in lost} == {f"json://127.0.0.1:{closed_port}"}
        assert len(lost) == busy - MAX_PENDING_PER_SINK
        assert "per sink" in (lost[0].error or "")
        assert len(outbox.pending) == MAX_PENDING_PER_SINK
        # Another busy tick later: the dead sink's share stays bounded.
        later = T0 + DAY / 2 + timedelta(hours=1)
        outbox, outcomes = courier.post(outbox, envelopes(busy), now=later)
        assert len(up.received) == 2 * busy
        assert len(outbox.pending) == MAX_PENDING_PER_SINK


def test_a_trickling_sink_is_cut_at_the_deadline_and_leaves_no_thread() -> None:
    budget = 5.0
    with trickle() as port, webhook() as up:
        slow = f"json://127.0.0.1:{port}/hook"
        courier = Courier([slow, up.apprise_url], give_up_after=DAY, tick_budget_s=budget)
        before = set(threading.enumerate())
        started = time.monotonic()
        outbox, outcomes = courier.post(Outbox(), [naked_envelope()], now=T0)
        took = time.monotonic() - started
        left = [
            t.name
            for t in threading.enumerate()
            if t not in before and not t.name.startswith("trickle")
        ]
    assert took < budget + 1.5, took  # a total deadline, not 2 s per byte forever
    assert left == []
    assert len(up.received) == 1  # the healthy sink did not wait
    [failed] = [o for o in outcomes if o.status == "pending"]
    assert failed.url == f"json://127.0.0.1:{port}"
    assert f"no complete answer within the tick's delivery deadline ({budget:g} s)" in (
        failed.error or ""
    )
    [pending] = outbox.pending
    assert pending.tries == 1  # retried on a later tick, with backoff


def test_a_process_that_sent_to_a_trickling_sink_can_exit() -> None:
    script = (
        "from datetime import timedelta\n"
        "from v6_pipeline.alerts.delivery import Courier, Outbox\n"
        "from v6_pipeline_tests.alerts.support import T0, naked_envelope\n"
        "import sys\n"
        "courier = Courier([sys.argv[1]], give_up_after=timedelta(days=1), tick_budget_s=2)\n"
        "courier.post(Outbox(), [naked_envelope()], now=T0)\n"
    )
    with trickle() as port:
        started = time.monotonic()
        try:
            done = subprocess.run(
                [sys.executable, "-c", script, f"json://127.0.0.1:{port}/hook"],
                cwd=REPO,
                capture_output=True,
                timeout=45,
            )
        except subprocess.TimeoutExpired:
            pytest.fail("the process could not exit: a delivery thread outlived the tick")
        took = time.monotonic() - started
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert took < 30  # imports dominate; the delivery itself ends at its 2 s deadline


def test_a_trickling_heartbeat_is_cut_at_its_deadline(caplog: pytest.LogCaptureFixture) -> None:
    answers: list[bool] = []
    with trickle(every_s=0.5) as port:  # a byte well within any per-read timeout
        before = set(threading.enumerate())
        url = f"http://127.0.0.1:{port}/ping/abc"
        # On a thread of the test's own, so that a ping that never ends fails the test.
        caller = threading.Thread(
            target=lambda: answers.append(ping(url, timeout_s=2)), name="trickle-test", daemon=True
        )
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="v6_pipeline.alerts"):
            caller.start()
            caller.join(timeout=15)
        took = time.monotonic() - started
        assert not caller.is_alive(), "the ping never ended"
        left = [
            t.name
            for t in threading.enumerate()
            if t not in before and not t.name.startswith("trickle")
        ]
    assert answers == [False]
    assert took < 2 + 1.5, took
    assert left == []
    [record] = caplog.records
    assert "no complete answer within 2 s" in record.message


def test_without_urls_alerts_are_logged_only(caplog: pytest.LogCaptureFixture) -> None:
    courier = Courier([], give_up_after=DAY)
    with caplog.at_level(logging.INFO, logger="v6_pipeline.alerts"):
        outbox, outcomes = courier.post(Outbox(), [naked_envelope()], now=T0)
    assert outbox.pending == ()
    assert [o.status for o in outcomes] == ["raised"]
    [record] = caplog.records
    assert record.levelno == logging.ERROR  # critical alerts log at ERROR
    assert "CRITICAL: 1 naked position(s) in DU111" in record.message


@pytest.mark.parametrize(
    "bad",
    ["http://example.com/hook", "slack://", "json://", "notaurl"],
)
def test_a_bad_url_is_an_error_naming_the_setting_and_the_entry(bad: str) -> None:
    with pytest.raises(ValueError, match=r"V6_ALERT_URLS: entry 2 .* is not a URL Apprise"):
        parse_urls(f"json://127.0.0.1:9/ok, {bad}")


def test_urls_are_comma_or_space_separated() -> None:
    mail = "mailtos://u:p@example.com?to=a@example.com,b@example.com"
    raw = f"json://127.0.0.1:9/a, json://127.0.0.1:9/b\njson://127.0.0.1:9/c,{mail}, "
    assert parse_urls(raw) == (
        "json://127.0.0.1:9/a",
        "json://127.0.0.1:9/b",
        "json://127.0.0.1:9/c",
        mail,
    )
    assert parse_urls("  ") == ()


def test_redacted_urls_keep_scheme_and_host_only() -> None:
    assert redact("json://user:secret@hooks.example:8080/T0k3n?x=1") == "json://hooks.example:8080"
    assert "secret" not in redact("mailtos://me:secret@example.com")


def test_the_heartbeat_ping_is_a_get_and_a_failure_is_logged_not_raised(
    closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    with webhook() as hook:
        assert ping(hook.http_url) is True
        hook.status = 503
        assert ping(hook.http_url) is False
    assert hook.requests == [("GET", "/ping/abc"), ("GET", "/ping/abc")]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="v6_pipeline.alerts"):
        assert ping(f"http://127.0.0.1:{closed_port}/ping/secret-uuid", timeout_s=2) is False
    [record] = caplog.records
    assert record.message.startswith(f"heartbeat ping to http://127.0.0.1:{closed_port} failed")
    assert "secret-uuid" not in record.message


def test_a_delivery_process_that_fails_is_a_failed_delivery_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(delivery, "SENDER", tmp_path / "missing.py")
    with webhook() as hook:
        courier = Courier([hook.apprise_url], give_up_after=DAY)
        outbox, outcomes = courier.post(Outbox(), [naked_envelope()], now=T0)
    assert hook.received == []
    [failed] = [o for o in outcomes if o.url]
    assert failed.status == "pending"
    assert "the delivery process failed (exit status 2)" in (failed.error or "")
    assert "missing.py" in (failed.error or "")
    assert outbox.pending[0].tries == 1  # retried later, never silently kept
