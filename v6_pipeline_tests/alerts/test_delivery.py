"""Delivery through Apprise to a real local HTTP server (Apprise's `json://` webhook):
content, retries, the outbox across ticks, one dead sink beside a live one, giving up,
bad URLs, and the heartbeat ping."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from v6_pipeline.alerts.delivery import (
    MAX_PENDING,
    Courier,
    Outbox,
    parse_urls,
    ping,
    redact,
)
from v6_pipeline_tests.alerts.support import T0, WINDOW, naked_envelope, webhook

DAY = timedelta(days=1)


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
            courier = Courier([silent, up.apprise_url], give_up_after=DAY, tick_budget_s=2)
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
    envelopes = [naked_envelope(T0 + n * WINDOW, conid=n) for n in range(MAX_PENDING + 3)]
    outbox, outcomes = courier.post(Outbox(), envelopes, now=T0 + DAY / 2)
    assert len(outbox.pending) == MAX_PENDING
    assert [o.status for o in outcomes].count("lost") == 3


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
