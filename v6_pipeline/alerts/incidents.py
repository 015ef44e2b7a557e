"""The incident model: one page per thing that is wrong, followed until it clears.

Pure: `step(state, observations, now=..., policy=...)` returns the next state, the
alerts to send and informational notes; no I/O and no wall clock. The state is small
and JSON-serialisable (it lives in a sensor cursor), so a daemon restart neither
repeats nor forgets an open incident.

Incidents, at most one of each kind open at a time:
- naked (critical): the NAKED_POSITION legs of the newest live judged window;
- warning: its MISSING_FROM_DELTA / POSITION_MISMATCH / STALE_DATA legs;
- pipeline (critical): live runs failing, grouped by cause (error type);
- silence (critical): no live window judged for `silence_after`.

Each alerts once when it opens, again when it changes (a leg added or cleared, a
quantity changed, a new failure cause) or `remind_after` after its last alert, and
"resolved" when it clears. Backfills never page. Inside a quiet window, IB-side
pipeline failures are recorded, not alerted, until a failure is seen after the window
ends; the silence clock pauses there too. Naked legs always page.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import NamedTuple

from v6_pipeline.alerts.observations import (
    Leg,
    Observation,
    RunFailed,
    RunSucceeded,
    WindowJudged,
)
from v6_pipeline.alerts.quiet import QuietWindows
from v6_pipeline.alerts.state import AlertKind, AlertState, Cause, Incident, IncidentKind

# The cursor stays small: an incident keeps this many legs (enough for the message,
# which cuts its list shorter) and the count of all of them.
KEPT_LEGS = 20
KEPT_CAUSES = 8
KEPT_ACCOUNTS = 50


@dataclass(frozen=True)
class Alert:
    """One message to send: an incident opened, changed, is still open, or cleared."""

    kind: AlertKind
    incident: Incident  # as of this alert (for "resolved": as it was when it cleared)
    at: datetime
    reason: str  # why now, in a few words
    window_key: str | None = None  # the window that caused it
    run_id: str | None = None  # the run that caused it

    @property
    def severity(self) -> str:
        return self.incident.severity


@dataclass(frozen=True)
class Policy:
    """Which incidents this state follows and when it speaks. Each sensor follows its own
    kinds (`follow`) in its own cursor."""

    follow: frozenset[IncidentKind] = field(default_factory=lambda: frozenset(IncidentKind))
    remind_after: timedelta | None = timedelta(hours=1)
    silence_after: timedelta | None = timedelta(minutes=15)
    quiet: QuietWindows = field(default_factory=QuietWindows)


class StepResult(NamedTuple):
    state: AlertState
    alerts: list[Alert]
    notes: list[str]  # informational log lines: backfills, alerts held back, ...


def step(
    state: AlertState, observations: Iterable[Observation], *, now: datetime, policy: Policy
) -> StepResult:
    """Fold `observations` (oldest first) into `state`, then check silence, held alerts
    and reminders at `now` (timezone-aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    run = _Step(state if state.started_at else replace(state, started_at=now), now, policy)
    for observation in observations:
        run.observe(observation)
    run.tick()
    return StepResult(run.state, run.alerts, run.notes)


class _Step:
    """One call of `step`: the state being advanced and what it says."""

    def __init__(self, state: AlertState, now: datetime, policy: Policy) -> None:
        self.now, self.policy = now, policy
        self.alerts: list[Alert] = []
        self.notes: list[str] = [
            f"{i.id} dropped: {i.kind} incidents are no longer followed (a setting changed)"
            for i in state.incidents
            if i.kind not in policy.follow
        ]
        # Else an incident nobody follows any more would remind forever.
        followed = tuple(i for i in state.incidents if i.kind in policy.follow)
        self.state = replace(state, incidents=followed)
        self.backfills: dict[str | None, list[WindowJudged]] = {}

    # Observations.

    def observe(self, obs: Observation) -> None:
        match obs:
            case WindowJudged(live=False):
                self.backfills.setdefault(obs.run_id, []).append(obs)
            case WindowJudged():
                self._window(obs)
            case RunFailed(live=False):
                self.notes.append(
                    f"backfill run {obs.run_id} failed ({obs.cause}): backfills never page"
                )
            case RunFailed():
                self._failure(obs)
            case RunSucceeded(live=True):
                self._resolve(IncidentKind.PIPELINE, f"run {obs.run_id} succeeded", obs)

    def _window(self, obs: WindowJudged) -> None:
        newest = self.state.newest_as_of
        if newest is not None and obs.as_of < newest:
            self.notes.append(
                f"window {obs.window_key} judged after the newer window "
                f"{self.state.newest_window}: incidents follow the newest, not paged"
            )
            return
        judged = max(obs.judged_at, self.state.last_judged_at or obs.judged_at)
        self.state = replace(
            self.state,
            last_judged_at=judged,
            newest_as_of=obs.as_of,
            newest_window=obs.window_key,
        )
        naked = tuple(leg for leg in obs.legs if leg.naked)
        others = tuple(leg for leg in obs.legs if not leg.naked)
        self._legs(IncidentKind.NAKED, naked, obs)
        self._legs(IncidentKind.WARNING, others, obs)
        self._resolve(IncidentKind.SILENCE, f"window {obs.window_key} was judged", obs)

    def _legs(self, kind: IncidentKind, legs: tuple[Leg, ...], obs: WindowJudged) -> None:
        if kind not in self.policy.follow:
            return
        current = self.state.open(kind)
        if not legs:
            if current is not None:
                self._resolve(kind, f"window {obs.window_key} has none of its legs", obs)
            return
        seen = {
            "fingerprint": _fingerprint(legs),
            "window_key": obs.window_key,
            "run_id": obs.run_id,
            "legs": _kept(legs),
            "leg_count": len(legs),
            "accounts": tuple(sorted({leg.account for leg in legs}))[:KEPT_ACCOUNTS],
        }
        if current is None:
            incident = Incident(
                id=f"{kind}-{obs.window_key}", kind=kind, opened_at=obs.as_of, **seen
            )
            reason = f"{len(legs)} leg(s) in window {obs.window_key}"
            self._announce(incident, AlertKind.OPEN, reason, obs)
        elif seen["fingerprint"] == current.fingerprint:
            self._put(replace(current, **seen))
        else:
            reason = _leg_change(current, legs)
            self._announce(replace(current, **seen), AlertKind.CHANGED, reason, obs)

    def _failure(self, obs: RunFailed) -> None:
        self.state = replace(self.state, last_failure=obs)
        silence = self.state.open(IncidentKind.SILENCE)
        if silence is not None:
            self._put(replace(silence, last_failure=obs))
        if IncidentKind.PIPELINE not in self.policy.follow:
            return
        current = self.state.open(IncidentKind.PIPELINE)
        if current is None:
            incident = Incident(
                id=f"pipeline-{obs.run_id[:8]}",
                kind=IncidentKind.PIPELINE,
                opened_at=obs.failed_at,
                fingerprint=obs.cause,
                window_key=obs.window_key,
                run_id=obs.run_id,
                causes=(Cause(obs.cause, obs.message, 1, obs.failed_at, obs.failed_at),),
                failed_runs=1,
            )
            self._announce(incident, AlertKind.OPEN, f"run {obs.run_id} failed", obs)
            return
        causes = _add_cause(current.causes, obs)
        updated = replace(
            current,
            fingerprint=",".join(sorted(c.name for c in causes)),
            window_key=obs.window_key,
            run_id=obs.run_id,
            causes=causes,
            failed_runs=current.failed_runs + 1,
        )
        if updated.fingerprint == current.fingerprint:
            self._put(updated)
        else:
            reason = f"runs now also fail with {obs.cause}"
            self._announce(updated, AlertKind.CHANGED, reason, obs)

    # Time.

    def tick(self) -> None:
        self._note_backfills()
        self._silence()
        for incident in self.state.incidents:
            if self._held(incident):
                continue
            if incident.due is not None:
                reason = "still failing after the quiet window ended"
                self._emit(incident, incident.due, reason, incident.window_key, incident.run_id)
            elif self._reminder_due(incident):
                reason = f"still open since {incident.opened_at:%Y-%m-%d %H:%M} UTC"
                self._emit(
                    incident, AlertKind.REMINDER, reason, incident.window_key, incident.run_id
                )

    def _silence(self) -> None:
        after = self.policy.silence_after
        if IncidentKind.SILENCE not in self.policy.follow or after is None:
            return
        if self.policy.quiet.is_quiet(self.now) or self.state.open(IncidentKind.SILENCE):
            return
        started = self.state.started_at
        assert started is not None
        since = self.state.last_judged_at or started
        # The clock starts at the first tick (no alert for history before alerting
        # existed), and time in a quiet window does not count: IB's reset is not silence.
        clock = max(since, started, self.policy.quiet.last_end(self.now) or started)
        if self.now - clock < after:
            return
        incident = Incident(
            id=f"silence-{since:%Y%m%dT%H%MZ}",
            kind=IncidentKind.SILENCE,
            opened_at=self.now,
            fingerprint=since.isoformat(),
            window_key=self.state.newest_window,
            run_id=self.state.last_failure.run_id if self.state.last_failure else None,
            silent_since=since,
            last_failure=self.state.last_failure,
        )
        reason = f"no window judged for {_duration(self.now - since)}"
        self._announce(incident, AlertKind.OPEN, reason, None)

    def _reminder_due(self, incident: Incident) -> bool:
        every = self.policy.remind_after
        return (
            every is not None
            and incident.alerted_at is not None
            and self.now - incident.alerted_at >= every
        )

    def _held(self, incident: Incident) -> bool:
        """Whether a quiet window holds this incident's alerts back now."""
        quiet = self.policy.quiet
        if incident.kind == IncidentKind.SILENCE:
            return quiet.is_quiet(self.now)
        if incident.kind != IncidentKind.PIPELINE or not incident.ib_side:
            return False
        last = incident.last_failed_at
        # Released only by a failure seen after the window ended: IB often recovers
        # by itself at the first run after its reset.
        return quiet.is_quiet(self.now) or (last is not None and quiet.is_quiet(last))

    # Speaking.

    def _announce(
        self,
        incident: Incident,
        kind: AlertKind,
        reason: str,
        obs: WindowJudged | RunFailed | None,
    ) -> None:
        if self._held(incident):
            due = kind if incident.alerted_at is not None else AlertKind.OPEN
            self._put(replace(incident, due=due))
            self.notes.append(f"{incident.id}: {reason}; inside a quiet window, not alerted")
            return
        window = obs.window_key if obs else incident.window_key
        run = obs.run_id if obs else incident.run_id
        self._emit(incident, kind, reason, window, run)

    def _emit(
        self,
        incident: Incident,
        kind: AlertKind,
        reason: str,
        window_key: str | None,
        run_id: str | None,
    ) -> None:
        incident = replace(incident, alerted_at=self.now, due=None)
        self._put(incident)
        self.alerts.append(Alert(kind, incident, self.now, reason, window_key, run_id))

    def _resolve(self, kind: IncidentKind, reason: str, obs: WindowJudged | RunSucceeded) -> None:
        incident = self.state.open(kind)
        if incident is None:
            return
        self.state = replace(
            self.state, incidents=tuple(i for i in self.state.incidents if i.kind != kind)
        )
        if incident.alerted_at is None:
            self.notes.append(f"{incident.id} cleared before it was alerted: {reason}")
            return
        self.alerts.append(
            Alert(AlertKind.RESOLVED, incident, self.now, reason, obs.window_key, obs.run_id)
        )

    def _put(self, incident: Incident) -> None:
        others = tuple(i for i in self.state.incidents if i.kind != incident.kind)
        self.state = replace(self.state, incidents=(*others, incident))

    def _note_backfills(self) -> None:
        # Only a state following legs is fed them: the others would count none.
        counted = bool({IncidentKind.NAKED, IncidentKind.WARNING} & self.policy.follow)
        for run_id, windows in self.backfills.items():
            naked = sum(1 for w in windows for leg in w.legs if leg.naked)
            others = sum(len(w.legs) for w in windows) - naked
            found = (
                f": {naked} naked and {others} other discrepancies, in the table" if counted else ""
            )
            self.notes.append(
                f"backfill run {run_id or '?'} judged {len(windows)} window(s) "
                f"({windows[0].window_key} .. {windows[-1].window_key}){found}; "
                "backfills never page"
            )


def _leg_state(leg: Leg) -> tuple[object, ...]:
    # Quantities are part of it: a naked leg whose quantity changed is a change.
    return (leg.type, round(leg.ib_position, 6), _round(leg.delta_position))


def _fingerprint(legs: Sequence[Leg]) -> str:
    items = sorted((((leg.account, leg.conid), _leg_state(leg)) for leg in legs), key=_first)
    return hashlib.sha256(repr(items).encode()).hexdigest()[:16]


def _first(item: tuple[object, ...]) -> object:
    return item[0]


def _kept(legs: Sequence[Leg]) -> tuple[Leg, ...]:
    return tuple(sorted(legs, key=lambda leg: (leg.account, leg.symbol, leg.conid)))[:KEPT_LEGS]


def _leg_change(before: Incident, legs: Sequence[Leg]) -> str:
    """What changed, in a few words; leg by leg when `before` kept all of its legs."""
    if before.leg_count > len(before.legs):
        return f"the legs changed: {len(legs)} now, {before.leg_count} before"
    old = {(leg.account, leg.conid): leg for leg in before.legs}
    new = {(leg.account, leg.conid): leg for leg in legs}
    added, cleared = len(new.keys() - old.keys()), len(old.keys() - new.keys())
    changed = sum(1 for k in new.keys() & old.keys() if _leg_state(new[k]) != _leg_state(old[k]))
    parts = [
        f"{n} leg(s) {what}"
        for n, what in ((added, "added"), (cleared, "cleared"), (changed, "changed quantity"))
        if n
    ]
    return ", ".join(parts)


def _add_cause(causes: tuple[Cause, ...], obs: RunFailed) -> tuple[Cause, ...]:
    found = next((c for c in causes if c.name == obs.cause), None)
    if found is None:
        updated = Cause(obs.cause, obs.message, 1, obs.failed_at, obs.failed_at)
    else:
        updated = replace(found, message=obs.message, runs=found.runs + 1, last_at=obs.failed_at)
    others = [c for c in causes if c.name != obs.cause]
    kept = sorted([*others, updated], key=lambda c: c.last_at)[-KEPT_CAUSES:]
    return tuple(kept)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
