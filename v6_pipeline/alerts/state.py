"""What the alerting remembers between ticks: the open incidents, in a sensor cursor.

Small and JSON-serialisable: an incident keeps a bounded sample of its legs and the
count of all of them, so a 500-leg incident costs a few kilobytes, not megabytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from v6_pipeline.alerts.observations import IB_SIDE_CAUSES, Leg, RunFailed

STATE_VERSION = 1


class IncidentKind(StrEnum):
    NAKED = "naked"
    WARNING = "warning"
    PIPELINE = "pipeline"
    SILENCE = "silence"


SEVERITY: dict[IncidentKind, str] = {
    IncidentKind.NAKED: "critical",
    IncidentKind.WARNING: "warning",
    IncidentKind.PIPELINE: "critical",
    IncidentKind.SILENCE: "critical",
}


class AlertKind(StrEnum):
    OPEN = "open"
    CHANGED = "changed"
    REMINDER = "reminder"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Cause:
    """The live runs that failed for one error type."""

    name: str
    message: str  # the newest failure's sentence
    runs: int
    first_at: datetime
    last_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "message": self.message,
            "runs": self.runs,
            "first_at": self.first_at.isoformat(),
            "last_at": self.last_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Cause:
        return cls(
            d["name"],
            d["message"],
            d["runs"],
            datetime.fromisoformat(d["first_at"]),
            datetime.fromisoformat(d["last_at"]),
        )


@dataclass(frozen=True)
class Incident:
    id: str
    kind: IncidentKind
    opened_at: datetime
    fingerprint: str  # what "changed" compares
    alerted_at: datetime | None = None  # None: not announced yet (held by a quiet window)
    due: AlertKind | None = None  # an alert a quiet window is holding back
    window_key: str | None = None  # newest window it was seen in
    run_id: str | None = None  # newest run it was seen in
    legs: tuple[Leg, ...] = ()  # at most KEPT_LEGS
    leg_count: int = 0
    accounts: tuple[str, ...] = ()  # of all its legs, at most KEPT_ACCOUNTS
    causes: tuple[Cause, ...] = ()  # pipeline
    failed_runs: int = 0  # pipeline
    silent_since: datetime | None = None  # silence: newest judged window, or clock start
    last_failure: RunFailed | None = None  # silence

    @property
    def severity(self) -> str:
        return SEVERITY[self.kind]

    @property
    def ib_side(self) -> bool:
        """A pipeline incident whose every cause is on IB's side."""
        return bool(self.causes) and all(c.name in IB_SIDE_CAUSES for c in self.causes)

    @property
    def last_failed_at(self) -> datetime | None:
        return max((c.last_at for c in self.causes), default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "opened_at": self.opened_at.isoformat(),
            "fingerprint": self.fingerprint,
            "alerted_at": _iso(self.alerted_at),
            "due": self.due.value if self.due else None,
            "window": self.window_key,
            "run_id": self.run_id,
            "legs": [leg.to_dict() for leg in self.legs],
            "leg_count": self.leg_count,
            "accounts": list(self.accounts),
            "causes": [c.to_dict() for c in self.causes],
            "failed_runs": self.failed_runs,
            "silent_since": _iso(self.silent_since),
            "last_failure": self.last_failure.to_dict() if self.last_failure else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Incident:
        return cls(
            id=d["id"],
            kind=IncidentKind(d["kind"]),
            opened_at=datetime.fromisoformat(d["opened_at"]),
            fingerprint=d["fingerprint"],
            alerted_at=_dt(d["alerted_at"]),
            due=AlertKind(d["due"]) if d["due"] else None,
            window_key=d["window"],
            run_id=d["run_id"],
            legs=tuple(Leg.from_dict(leg) for leg in d["legs"]),
            leg_count=d["leg_count"],
            accounts=tuple(d["accounts"]),
            causes=tuple(Cause.from_dict(c) for c in d["causes"]),
            failed_runs=d["failed_runs"],
            silent_since=_dt(d["silent_since"]),
            last_failure=RunFailed.from_dict(d["last_failure"]) if d["last_failure"] else None,
        )


@dataclass(frozen=True)
class AlertState:
    """What the alerting remembers between ticks."""

    started_at: datetime | None = None  # the first tick: the silence clock's start
    last_judged_at: datetime | None = None  # when the newest live window was judged
    newest_as_of: datetime | None = None  # that window's snapshot time
    newest_window: str | None = None
    last_failure: RunFailed | None = None  # the newest live run failure
    incidents: tuple[Incident, ...] = ()

    def open(self, kind: IncidentKind) -> Incident | None:
        return next((i for i in self.incidents if i.kind == kind), None)

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": STATE_VERSION,
                "started_at": _iso(self.started_at),
                "last_judged_at": _iso(self.last_judged_at),
                "newest_as_of": _iso(self.newest_as_of),
                "newest_window": self.newest_window,
                "last_failure": self.last_failure.to_dict() if self.last_failure else None,
                "incidents": [i.to_dict() for i in self.incidents],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> AlertState:
        """The state saved by `to_json`; None or "" (a sensor's first tick) is fresh."""
        if not text:
            return cls()
        d = json.loads(text)
        if d.get("v") != STATE_VERSION:
            raise ValueError(
                f"alert state version {d.get('v')!r} is not {STATE_VERSION}; reset the "
                "sensor's cursor in the Dagster UI to start afresh"
            )
        failure = d["last_failure"]
        return cls(
            started_at=_dt(d["started_at"]),
            last_judged_at=_dt(d["last_judged_at"]),
            newest_as_of=_dt(d["newest_as_of"]),
            newest_window=d["newest_window"],
            last_failure=RunFailed.from_dict(failure) if failure else None,
            incidents=tuple(Incident.from_dict(i) for i in d["incidents"]),
        )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
