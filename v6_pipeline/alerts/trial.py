"""A test alert: one clearly-marked message through every `V6_ALERT_URLS` sink, sent as
the sensors send (Apprise, in the delivery process, one attempt), each sink's answer
kept, and the whole recorded in `alert_log` as kind `test`."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from v6_pipeline.alerts import log as alert_log
from v6_pipeline.alerts.compose import Message
from v6_pipeline.alerts.delivery import Courier, DeliveryOutcome, Envelope, Pending

KIND = "test"  # alert_log.kind of every row a test writes
# A test is not retried on later ticks: a sink that did not take it is `failed`.
FAILED = "failed"
DEADLINE_S = 20.0


class _Quiet:
    """The courier's log: the lines printed per sink say it all."""

    def info(self, msg: str) -> Any:
        return None

    def warning(self, msg: str) -> Any:
        return None

    def error(self, msg: str) -> Any:
        return None


@dataclass(frozen=True)
class SinkResult:
    label: str  # the sink's URL cut to scheme and host
    delivered: bool
    said: str  # the sink's answer when not delivered, in Apprise's words


def envelope(now: datetime, *, ui_url: str) -> Envelope:
    host = socket.gethostname()
    at = now.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Envelope(
        incident_id=f"test-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}",
        kind=KIND,
        severity="test",
        raised_at=now,
        message=Message(
            title="[TEST] v6_pipeline test alert: no action needed",
            body=(
                f"This is a TEST alert sent by `v6 alerts test` on {host} at {at}, through "
                "every sink in V6_ALERT_URLS, to check that alerts reach this channel. No "
                "position is affected and nothing needs doing. Real alerts look like "
                "'CRITICAL: 1 naked position(s) in DU222 …' and link to the Dagster UI "
                f"({ui_url})."
            ),
            notify_type="info",
        ),
    )


def send_test(
    urls: Sequence[str], *, ui_url: str, deadline_s: float = DEADLINE_S
) -> tuple[list[SinkResult], list[DeliveryOutcome]]:
    """Send the test alert to each of `urls` (one attempt each, all within `deadline_s`);
    each sink's result, in the order of `urls`, and the outcomes for `alert_log`."""
    now = datetime.now(UTC)
    env = envelope(now, ui_url=ui_url)
    courier = Courier(
        urls,
        give_up_after=timedelta(hours=1),
        tick_budget_s=deadline_s,
        attempts_per_tick=1,
        log=_Quiet(),
    )
    due = [Pending(sink_id, env, first_at=now, next_at=now) for sink_id in courier.sinks]
    sent = courier.send(due, now=now)
    outcomes = [DeliveryOutcome(env, "raised", now)]
    results: dict[str, SinkResult] = {}
    for pending, outcome, _ in sent:
        sink = courier.sinks[pending.sink]
        if outcome is None:  # the delivery process never tried it
            outcome = DeliveryOutcome(
                env, FAILED, now, sink.label, 0, "the delivery process did not try"
            )
        elif outcome.status != "delivered":
            outcome = replace(outcome, status=FAILED)
        outcomes.append(outcome)
        results[pending.sink] = SinkResult(
            sink.label, outcome.status == "delivered", outcome.error or ""
        )
    return [results[sink_id] for sink_id in courier.sinks], outcomes


def record(lake_dir: str, outcomes: Sequence[DeliveryOutcome]) -> int:
    """Append the test's rows to `alert_log` (kind `test`)."""
    return alert_log.append(lake_dir, outcomes)
