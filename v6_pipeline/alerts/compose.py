"""The words of an alert: a title and a plain-text body that read well in Slack and e-mail.

Pure. The body is capped (`MAX_BODY_CHARS`, under the smallest common chat limit of
4096 characters): long lists of legs end in "and N more", long sentences are cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from v6_pipeline.alerts.incidents import Alert
from v6_pipeline.alerts.observations import Leg, RunFailed
from v6_pipeline.alerts.state import AlertKind, Incident, IncidentKind
from v6_pipeline.lake.paths import POSITION_DISCREPANCIES

DEFAULT_UI_URL = "http://127.0.0.1:3000"
ASSET = POSITION_DISCREPANCIES  # the asset is named after its table
MAX_BODY_CHARS = 3500
MAX_TITLE_CHARS = 200
MAX_SENTENCE_CHARS = 400


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    notify_type: str  # Apprise's: "failure", "warning", "success" or "info"


def compose(alert: Alert, *, ui_url: str = DEFAULT_UI_URL) -> Message:
    incident = alert.incident
    head, lines = _WORDS[incident.kind](alert)
    if alert.kind != AlertKind.RESOLVED:
        label = alert.severity.upper()
        if alert.kind == AlertKind.CHANGED:
            label += ", changed"
        elif alert.kind == AlertKind.REMINDER:
            label += ", still open"
        notify_type = "failure" if alert.severity == "critical" else "warning"
    else:
        label, notify_type = "RESOLVED", "success"
    title = _cut(f"{label}: {head}", MAX_TITLE_CHARS)
    footer = [*_links(alert, ui_url), f"Incident {incident.id} ({alert.kind}: {alert.reason})"]
    return Message(title, _fit(lines, incident, footer), notify_type)


def _legs_words(alert: Alert) -> tuple[str, list[str]]:
    incident = alert.incident
    naked = incident.kind == IncidentKind.NAKED
    what = "naked position(s)" if naked else "position(s) disagreeing with IB"
    accounts = ", ".join(incident.accounts)
    window = f"window {alert.window_key or incident.window_key} UTC"
    if alert.kind == AlertKind.RESOLVED:
        head = f"{what} in {accounts} cleared ({window})"
        first = f"Cleared: {alert.reason}. It had {incident.leg_count} leg(s):"
    else:
        head = f"{incident.leg_count} {what} in {accounts} ({window})"
        first = (
            "Delta Lake believes these positions are open; IB does not hold them. "
            "Strategies may be trading legs that do not exist."
            if naked
            else "IB and the Delta Lake position log disagree on these positions."
        )
    return head, [
        first,
        f"Accounts: {accounts}",
        f"Open since: {_when(incident.opened_at)}",
        "",
    ]


def _pipeline_words(alert: Alert) -> tuple[str, list[str]]:
    incident = alert.incident
    names = ", ".join(c.name for c in incident.causes)
    since = _when(incident.opened_at)
    if alert.kind == AlertKind.RESOLVED:
        head = f"reconciliation works again ({names} cleared)"
        first = (
            f"Cleared: {alert.reason}. It had failed {incident.failed_runs} run(s) since {since}."
        )
    else:
        head = f"reconciliation failing ({names}) since {since}, {incident.failed_runs} run(s)"
        first = (
            f"Reconciliation runs are failing: positions are not being checked. "
            f"{incident.failed_runs} run(s) failed since {since}."
        )
    causes = [
        f"{cause.name}: {cause.runs} run(s), last at {_when(cause.last_at)}. "
        f"{_cut(cause.message, MAX_SENTENCE_CHARS)}"
        for cause in incident.causes
    ]
    return head, [first, "", *causes]


def _silence_words(alert: Alert) -> tuple[str, list[str]]:
    incident = alert.incident
    since = incident.silent_since
    assert since is not None
    if alert.kind == AlertKind.RESOLVED:
        return "reconciliation judges windows again", [f"Cleared: {alert.reason}."]
    started = "" if incident.window_key else " (when alerting started)"
    head = (
        f"reconciliation has not judged a window since {since.astimezone(UTC):%H:%M} UTC{started}"
    )
    return head, [
        f"{head[0].upper()}{head[1:]}; last failure: {_failure(incident.last_failure)}",
        "",
        "Check that reconciliation_schedule is running and its runs are not skipped, "
        "queued or failing.",
    ]


_WORDS = {
    IncidentKind.NAKED: _legs_words,
    IncidentKind.WARNING: _legs_words,
    IncidentKind.PIPELINE: _pipeline_words,
    IncidentKind.SILENCE: _silence_words,
}


def leg_line(leg: Leg) -> str:
    """One position as a trader reads it: account, contract, IB vs Delta quantity."""
    delta = "no row" if leg.delta_position is None else f"{leg.delta_position:g}"
    return (
        f"{leg.account}  {_contract(leg)} (conid {leg.conid}): {leg.type}, "
        f"IB {leg.ib_position:g}, Delta {delta}"
    )


def _contract(leg: Leg) -> str:
    parts = [leg.symbol or "?"]
    if leg.expiry:
        e = leg.expiry
        parts.append(f"{e[:4]}-{e[4:6]}-{e[6:]}" if len(e) == 8 and e.isdigit() else e)
    if leg.strike:
        parts.append(f"{leg.strike:g}")
    if leg.right:
        parts.append(leg.right)
    if len(parts) == 1 and leg.sec_type:
        parts.append(leg.sec_type)
    return " ".join(parts)


def _fit(lines: list[str], incident: Incident, footer: list[str]) -> str:
    """`lines`, then as many legs as fit under `MAX_BODY_CHARS`, then `footer`."""
    budget = MAX_BODY_CHARS - sum(len(s) + 1 for s in (*lines, "", *footer)) - 60
    shown: list[str] = []
    listed = 0
    for leg in incident.legs:
        entry = [leg_line(leg)]
        if leg.details:
            entry.append(f"    {_cut(leg.details, MAX_SENTENCE_CHARS)}")
        cost = sum(len(s) + 1 for s in entry)
        if cost > budget:
            break
        shown.extend(entry)
        listed += 1
        budget -= cost
    if incident.leg_count > listed:
        shown.append(f"and {incident.leg_count - listed} more (table {ASSET})")
    body = "\n".join([*lines, *shown, "", *footer]).replace("\n\n\n", "\n\n")
    return _cut(body, MAX_BODY_CHARS)


def _links(alert: Alert, ui_url: str) -> list[str]:
    base = ui_url.rstrip("/")
    links = []
    if alert.run_id:
        links.append(f"Run: {base}/runs/{quote(alert.run_id)}")
    window = alert.window_key or alert.incident.window_key
    query = f"?{urlencode({'view': 'partitions', 'partition': window})}" if window else ""
    links.append(f"Discrepancies: {base}/assets/{ASSET}{query}")
    return links


def _failure(failure: RunFailed | None) -> str:
    if failure is None:
        return "none recorded"
    return (
        f"{_when(failure.failed_at)} {failure.cause}: {_cut(failure.message, MAX_SENTENCE_CHARS)}"
    )


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
