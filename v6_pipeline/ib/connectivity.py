"""IB's connectivity codes and what each means for a position snapshot in progress.

One table for the client (`snapshot.py` fails or goes on by it), the emulator (which
sends each as a fault, with IB's own text) and docs/gateway.md ("IB's connectivity codes").
A code that *fails* the snapshot is transient: the snapshot is retried within its
timeout, and inside `V6_IB_QUIET_WINDOWS` until the window's deadline. A *notice* is
logged and the answer is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from v6_pipeline.ib.error_codes import ErrorCode


@dataclass(frozen=True, slots=True)
class Connectivity:
    code: ErrorCode
    text: str  # IB's message, as the gateway sends it
    fails: bool  # whether an answer in progress when it arrives is thrown away
    why: str


CONNECTIVITY: dict[int, Connectivity] = {
    c.code: c
    for c in (
        Connectivity(
            ErrorCode.CONNECTIVITY_LOST,
            "Connectivity between IB and Trader Workstation has been lost.",
            True,
            "the gateway lost IB's servers: positions it reports may be stale or partial",
        ),
        Connectivity(
            ErrorCode.CONNECTIVITY_RESTORED_DATA_LOST,
            "Connectivity between IB and Trader Workstation has been restored - data lost.",
            True,
            "restored, but data was lost meanwhile: an answer in progress may miss rows",
        ),
        Connectivity(
            ErrorCode.CONNECTIVITY_RESTORED_DATA_MAINTAINED,
            "Connectivity between IB and Trader Workstation has been restored - data maintained.",
            False,
            "restored with data kept: what the gateway reports is whole",
        ),
        Connectivity(
            ErrorCode.CONNECTIVITY_BROKEN,
            "Connectivity between Trader Workstation and server is broken. It will be "
            "restored automatically.",
            True,
            "the gateway is cut off from IB's servers: its positions may be stale",
        ),
        Connectivity(
            ErrorCode.SOCKET_PORT_RESET,
            "TWS socket port has been reset and this connection is being dropped. Please "
            "reconnect on port 4002",
            True,
            "the gateway drops this connection (its nightly restart, a settings change)",
        ),
        Connectivity(
            ErrorCode.NOT_CONNECTED,
            "Not connected",
            True,
            "the gateway has no session with IB (logged out, re-login, reset)",
        ),
        Connectivity(
            ErrorCode.COMPETING_LIVE_SESSION,
            "No market data during competing live session",
            False,
            "about market data only: positions are unaffected",
        ),
    )
}


def fails_snapshot(code: int) -> bool:
    """Whether error `code`, arriving while a snapshot is in progress, fails it."""
    known = CONNECTIVITY.get(code)
    return known is not None and known.fails
