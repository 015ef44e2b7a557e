"""One sensor tick, Dagster-free: observations in; alerts stepped, sent, logged; the new
state and what to say about the tick out. The sensors only read Dagster's records.

The state (`AlertCursor`: where the reading stopped, the incidents, the outbox) is
shared by every evaluator of a sensor through a `Store` (`ledger.Ledger` in the Dagster
instance): a tick reads it, decides, and writes the new state only if nobody wrote since
it read; the loser decides again on the winner's state. So an alert is raised once
however many processes evaluate the sensor, and a restart neither repeats nor forgets.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from v6_pipeline.alerts import log as alert_log
from v6_pipeline.alerts.delivery import (
    OVERFLOW,
    URLS_SETTING,
    Courier,
    DeliveryOutcome,
    Envelope,
    Log,
    Outbox,
    Pending,
    Sent,
    settle,
)
from v6_pipeline.alerts.incidents import Alert, Policy, step
from v6_pipeline.alerts.ledger import ATTEMPTS, LedgerContendedError
from v6_pipeline.alerts.observations import Observation
from v6_pipeline.alerts.state import AlertState, Incident, IncidentKind

Position = str | int | None


@dataclass(frozen=True)
class AlertCursor:
    """A sensor's alert state: what its evaluators share."""

    position: Position = None
    state: AlertState = field(default_factory=AlertState)
    outbox: Outbox = field(default_factory=Outbox)
    seq: int = 0  # writes so far: each tick's write is a new text

    def to_json(self) -> str:
        return json.dumps(
            {
                "seq": self.seq,
                "position": self.position,
                "state": json.loads(self.state.to_json()),
                "outbox": self.outbox.to_list(),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> AlertCursor:
        """The state saved by `to_json` (or by a sensor cursor of an earlier version,
        which held it as strings in a string); None, "" or a tick's note is fresh."""
        if not text:
            return cls()
        d = json.loads(text)
        if not isinstance(d, dict) or "state" not in d:
            return cls()
        state, outbox = d["state"], d["outbox"]
        return cls(
            d["position"],
            AlertState.from_json(state if isinstance(state, str) else json.dumps(state)),
            Outbox.from_json(outbox) if isinstance(outbox, str) else Outbox.from_list(outbox),
            int(d.get("seq", 0)),
        )


class Store(Protocol):
    """Where the state is shared: read it, and write it only if it is still `old`."""

    def read(self) -> str | None: ...
    def swap(self, old: str | None, new: str) -> bool: ...
    def update(self, change: Callable[[str | None], str]) -> str: ...


class MemoryStore:
    """A `Store` one evaluator holds alone (a test, a tick without an instance)."""

    def __init__(self, text: str | None = None) -> None:
        self.text = text

    def read(self) -> str | None:
        return self.text

    def swap(self, old: str | None, new: str) -> bool:
        if self.text != old:
            return False
        self.text = new
        return True

    def update(self, change: Callable[[str | None], str]) -> str:
        self.text = change(self.text)
        return self.text


@dataclass(frozen=True)
class TickReport:
    alerts: list[Alert]
    notes: list[str]
    outcomes: list[DeliveryOutcome]
    pending: int  # deliveries still waiting in the outbox
    observations: int = 0
    sinks: int = 0
    incidents: tuple[Incident, ...] = ()  # open after the tick
    next_reminder: datetime | None = None
    next_try: datetime | None = None
    raced: int = 0  # writes lost to another evaluator (it decided; this tick re-read)

    def summary(self) -> str:
        """What the tick did, for a person: the tick's text in the UI and its log."""
        raised = {Envelope.of_alert_key(a) for a in self.alerts}
        parts = [f"alerted: {self._alert(a)}" for a in self.alerts]
        retried = [o for o in self.outcomes if o.url and o.envelope.key not in raised]
        if retried:
            ok = sum(o.status == "delivered" for o in retried)
            failing = sum(o.status == "pending" for o in retried)
            parts.append(f"retried earlier alerts: {ok} delivered, {failing} still failing")
        parts.extend(
            f"LOST {o.envelope.kind} {o.envelope.incident_id} on {o.url}: {o.error}"
            for o in self.outcomes
            if o.status == "lost"
        )
        if not self.alerts:
            parts.insert(0, f"nothing new ({self._open()})")
        if self.pending:
            at = f", next try {self.next_try:%H:%M:%S} UTC" if self.next_try else ""
            parts.append(f"{self.pending} delivery(ies) pending{at}")
        parts.extend(self.notes)
        if self.observations:
            parts.append(f"{self.observations} new observation(s)")
        if self.raced:
            parts.append(
                f"another evaluator wrote the shared state first {self.raced} time(s); "
                "decided again on its state"
            )
        return "; ".join(parts)

    def _alert(self, alert: Alert) -> str:
        incident = alert.incident
        if alert.kind == "resolved":
            what = alert.reason
        elif incident.kind in (IncidentKind.NAKED, IncidentKind.WARNING):
            what = f"{incident.leg_count} leg{'s' * (incident.leg_count != 1)}"
        elif incident.kind == IncidentKind.PIPELINE:
            causes = ", ".join(c.name for c in incident.causes)
            what = f"{causes}; {incident.failed_runs} failed run(s)"
        else:
            what = alert.reason
        return f"{alert.kind} {incident.id} ({what}) → {self._delivery(alert)}"

    def _delivery(self, alert: Alert) -> str:
        if not self.sinks:
            return f"no sink set ({URLS_SETTING}): log and alert_log only"
        key = Envelope.of_alert_key(alert)
        mine = [o for o in self.outcomes if o.url and o.envelope.key == key]
        delivered = sum(o.status == "delivered" for o in mine)
        failing = [o for o in mine if o.status == "pending"]
        if delivered == self.sinks:
            return f"{delivered} sink{'s' * (delivered != 1)} delivered"
        said = f"{delivered} of {self.sinks} sinks delivered"
        if failing:
            said += f", {len(failing)} failing ({failing[0].url}: {failing[0].error})"
        return said

    def _open(self) -> str:
        if not self.incidents:
            return "no incident open"
        ids = ", ".join(i.id for i in self.incidents)
        remind = f", next reminder {self.next_reminder:%H:%M} UTC" if self.next_reminder else ""
        return f"{len(self.incidents)} incident(s) open: {ids}{remind}"


def run_tick(
    cursor: AlertCursor,
    observations: Sequence[Observation],
    *,
    position: Position,
    now: datetime,
    policy: Policy,
    courier: Courier,
    ui_url: str,
    lake_dir: str | os.PathLike[str],
    log: Log,
) -> tuple[AlertCursor, TickReport]:
    """One tick of one evaluator holding `cursor` alone: `shared_tick` over a
    `MemoryStore` with `observations` read up to `position`."""
    return shared_tick(
        MemoryStore(cursor.to_json()),
        read=lambda _: (observations, position),
        now=lambda: now,
        policy=policy,
        courier=courier,
        ui_url=ui_url,
        lake_dir=lake_dir,
        log=log,
    )


def shared_tick(
    store: Store,
    *,
    read: Callable[[Position], tuple[Sequence[Observation], Position]],
    now: Callable[[], datetime],
    policy: Policy,
    courier: Courier,
    ui_url: str,
    lake_dir: str | os.PathLike[str],
    log: Log,
    seed: str | None = None,
) -> tuple[AlertCursor, TickReport]:
    """Step the shared state with what `read` returns after its position, write it, and
    only then send the alerts and the pending ones that are due (leased in the same
    write), record how they went, and append every outcome to `alert_log`. `seed` is
    the state to start from when the store holds none (an earlier version's cursor).

    `read` may raise (the lake unreadable): then nothing was written or sent."""
    raced = 0
    for _ in range(ATTEMPTS):
        at = now()
        old = store.read()
        cursor = AlertCursor.from_json(old if old is not None else seed)
        observations, position = read(cursor.position)
        result = step(cursor.state, observations, now=at, policy=policy)
        envelopes = [Envelope.of(a, ui_url=ui_url) for a in result.alerts]
        queued = courier.queue(cursor.outbox, envelopes, now=at)
        leased, due, lost = courier.take(queued, now=at)
        planned = AlertCursor(position, result.state, leased, cursor.seq + 1)
        if old is not None and replace(planned, seq=cursor.seq) == cursor:
            planned = cursor  # nothing changed: nothing to write (a tick every few seconds)
            break
        if store.swap(old, planned.to_json()):
            break
        raced += 1
    else:
        raise LedgerContendedError(
            f"{ATTEMPTS} writes in a row lost to other evaluators of this sensor; they alert"
        )
    for note in result.notes:
        log.info(note)
    outcomes = courier.announce(envelopes, now=at) + courier.give_up(lost, now=at)
    sent = courier.send(due, now=at)
    outcomes.extend(o for _, o, _ in sent if o is not None)
    final = planned
    if sent:
        final, overflow = _record(store, sent)
        outcomes.extend(courier.give_up(overflow, now=at, why=OVERFLOW))
    try:
        alert_log.append(lake_dir, outcomes)
    except Exception as exc:  # the alerts went out; a lake error must not resend them
        log.error(
            f"could not append {len(outcomes)} row(s) to alert_log under {lake_dir}: {exc}; "
            "the alerts themselves were sent and logged above"
        )
    report = TickReport(
        alerts=result.alerts,
        notes=result.notes,
        outcomes=outcomes,
        pending=len(final.outbox.pending),
        observations=len(observations),
        sinks=len(courier.sinks),
        incidents=final.state.incidents,
        next_reminder=_next_reminder(final.state, policy.remind_after),
        next_try=min((p.next_at for p in final.outbox.pending), default=None),
        raced=raced,
    )
    return final, report


def _record(store: Store, sent: Sequence[Sent]) -> tuple[AlertCursor, list[Pending]]:
    """Write what the sends did into the newest shared state; it, and the entries the
    outbox bound dropped."""
    dropped: list[Pending] = []

    def change(text: str | None) -> str:
        cursor = AlertCursor.from_json(text)
        outbox, overflow = settle(cursor.outbox, sent)
        dropped[:] = overflow
        return replace(cursor, outbox=outbox, seq=cursor.seq + 1).to_json()

    return AlertCursor.from_json(store.update(change)), dropped


def _next_reminder(state: AlertState, every: timedelta | None) -> datetime | None:
    if every is None:
        return None
    return min((i.alerted_at + every for i in state.incidents if i.alerted_at), default=None)


def tick_note(said: str, *, state_key: str, seq: int) -> str:
    """The sensor cursor a tick leaves: machine state (where the shared state is, and its
    write count), with what the tick did first. The UI's tick list shows a cursor in
    this form (`{"__class__": ...}`) as `key=value` pairs: the row reads what it did."""
    note: dict[str, Any] = {"__class__": "AlertTick", "did": said[:500], "state": state_key}
    note["seq"] = seq
    return json.dumps(note, ensure_ascii=False, separators=(",", ":"))
