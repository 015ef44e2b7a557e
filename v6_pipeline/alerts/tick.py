"""One sensor tick, Dagster-free: observations in; alerts stepped, sent, logged; the new
cursor and what to say about the tick out. The sensors only read Dagster's records.

The cursor holds where the sensor's reading stopped (`position`: a storage id or run
cursor), the incident state and the outbox, in one JSON string, so they advance
together: a restart neither repeats nor forgets.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from v6_pipeline.alerts import log as alert_log
from v6_pipeline.alerts.delivery import Courier, Envelope, Log, Outbox, Outcome
from v6_pipeline.alerts.incidents import Alert, Policy, step
from v6_pipeline.alerts.observations import Observation
from v6_pipeline.alerts.state import AlertState


@dataclass(frozen=True)
class AlertCursor:
    position: str | int | None = None
    state: AlertState = field(default_factory=AlertState)
    outbox: Outbox = field(default_factory=Outbox)

    def to_json(self) -> str:
        return json.dumps(
            {
                "position": self.position,
                "state": self.state.to_json(),
                "outbox": self.outbox.to_json(),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> AlertCursor:
        """The cursor saved by `to_json`; None (a sensor's first tick) is fresh."""
        if not text:
            return cls()
        d = json.loads(text)
        return cls(d["position"], AlertState.from_json(d["state"]), Outbox.from_json(d["outbox"]))


@dataclass(frozen=True)
class TickReport:
    alerts: list[Alert]
    notes: list[str]
    outcomes: list[Outcome]
    pending: int  # deliveries still waiting in the outbox

    def summary(self) -> str:
        """One line for the tick's log or SkipReason: what was sent, or why nothing."""
        sent = [f"{a.kind} {a.incident.id} ({a.reason})" for a in self.alerts]
        parts = [
            f"alerted: {'; '.join(sent)}"
            if sent
            else "no alert: nothing opened, changed or cleared"
        ]
        delivered = sum(o.status == "delivered" for o in self.outcomes)
        lost = sum(o.status == "lost" for o in self.outcomes)
        if delivered or self.pending or lost:
            parts.append(f"{delivered} delivered, {self.pending} pending, {lost} lost")
        parts.extend(self.notes)
        return ". ".join(parts)


def run_tick(
    cursor: AlertCursor,
    observations: Sequence[Observation],
    *,
    position: str | int | None,
    now: datetime,
    policy: Policy,
    courier: Courier,
    ui_url: str,
    lake_dir: str | os.PathLike[str],
    log: Log,
) -> tuple[AlertCursor, TickReport]:
    """Step the incidents with `observations` (read up to `position`), send the alerts
    and the pending ones that are due, and append every outcome to `alert_log`."""
    result = step(cursor.state, observations, now=now, policy=policy)
    for note in result.notes:
        log.info(note)
    envelopes = [Envelope.of(a, ui_url=ui_url) for a in result.alerts]
    outbox, outcomes = courier.post(cursor.outbox, envelopes, now=now)
    try:
        alert_log.append(lake_dir, outcomes)
    except Exception as exc:  # the alerts went out; a lake error must not resend them
        log.error(
            f"could not append {len(outcomes)} row(s) to alert_log under {lake_dir}: {exc}; "
            "the alerts themselves were sent and logged above"
        )
    report = TickReport(result.alerts, result.notes, outcomes, len(outbox.pending))
    return AlertCursor(position, result.state, outbox), report
