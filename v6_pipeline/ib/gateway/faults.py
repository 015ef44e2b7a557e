"""The ways a real gateway misbehaves, as data: `--fault NAME` parsed into `Fault`s.

Where each one takes effect on the wire is in `answers.py` (positions, pushes and
notices) and `session.py` (startApi); this module only names and parses them. Notice
faults act once, when `set_faults` sets them, on the clients connected then.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from v6_pipeline.ib.connectivity import CONNECTIVITY


class FaultName(StrEnum):
    NO_POSITION_END = "no-position-end"
    """positions are sent, positionEnd never is"""
    DROP_MID_POSITIONS = "drop-mid-positions"
    """the socket is closed after half of the positions"""
    MALFORMED_POSITION = "malformed-position"
    """one position frame has a non-numeric quantity (the first of each answer and push)"""
    NONFINITE_POSITION = "nonfinite-position"
    """the first position's quantity is sent as nan and the last one's as inf, in answers
    and pushes (a portfolio cannot hold them; a broken gateway can still send them)"""
    NONFINITE_AVG_COST = "nonfinite-avg-cost"
    """the first position's average cost is sent as nan (answers and pushes)"""
    HUGE_CONID = "huge-conid"
    """the first position's conid is sent as 2^64, beyond int64, in answers and pushes (a
    portfolio cannot hold it; a broken gateway or proxy can still send it)"""
    HUGE_CONID_PUSH = "huge-conid-push"
    """every push also carries a position of a new stock whose conid is 2^64 (answers stay
    clean)"""
    DUPLICATE_POSITIONS = "duplicate-positions"
    """every position is sent twice, first with a wrong quantity, then the true one"""
    CLIENT_ID_IN_USE = "client-id-in-use"
    """error 326 in answer to startApi, then close"""
    CONNECTIVITY_LOST = "connectivity-lost"
    """error 1100 instead of answering reqPositions"""
    REPEAT_UPDATES = "repeat-updates"
    """every pushed position update is sent twice, identical (IB repeats itself)"""
    UNKNOWN_ACCOUNT = "unknown-account"
    """every push also carries a position in an account the gateway does not manage"""
    NOTICE_CONNECTIVITY_LOST = "notice-connectivity-lost"
    """error 1100 to every connected client, once, when the fault is set"""
    NOTICE_RESTORED_DATA_LOST = "notice-restored-data-lost"
    """error 1101 (restored, data lost) to every connected client, once, when set"""
    NOTICE_RESTORED_DATA_KEPT = "notice-restored-data-kept"
    """error 1102 (restored, data maintained) to every connected client, once, when set"""
    DELAY = "delay"
    """wait `seconds` before answering reqPositions"""
    ERROR_MID_POSITIONS = "error-mid-positions"
    """connectivity code `code` (IB's text) after half of the positions, then the rest
    and positionEnd, as IB sends a notice mid-answer"""
    RESTART = "restart"
    """drop every connection and refuse new ones for `seconds`, then serve again, once,
    when set (IB's nightly reset)"""


# The faults that take an argument, and what it is.
_ARGUMENTS = {FaultName.DELAY: "SECONDS", FaultName.RESTART: "SECONDS"}
_ARGUMENTS[FaultName.ERROR_MID_POSITIONS] = "CODE"
# How each is spelled on the command line, for help texts and error messages.
FAULT_SPELLINGS: tuple[str, ...] = tuple(
    f"{name}:{_ARGUMENTS[name]}" if name in _ARGUMENTS else str(name) for name in FaultName
)


class FaultError(ValueError):
    """An unknown fault name or a bad argument."""


@dataclass(frozen=True, slots=True)
class Fault:
    name: FaultName
    seconds: float = 0.0
    code: int = 0  # error-mid-positions: the connectivity code sent

    def __str__(self) -> str:
        if self.name is FaultName.ERROR_MID_POSITIONS:
            return f"{self.name}:{self.code}"
        return f"{self.name}:{self.seconds:g}" if self.name in _ARGUMENTS else str(self.name)


def parse_fault(spelling: str) -> Fault:
    """`"no-position-end"`, `"delay:2.5"`, `"error-mid-positions:1101"` -> Fault."""
    name, _, argument = spelling.strip().partition(":")
    try:
        fault_name = FaultName(name)
    except ValueError:
        raise FaultError(
            f"unknown fault {spelling!r}; known: {', '.join(FAULT_SPELLINGS)}"
        ) from None
    if fault_name not in _ARGUMENTS:
        if argument:
            raise FaultError(f"fault {name!r} takes no argument, got {spelling!r}")
        return Fault(fault_name)
    if fault_name is FaultName.ERROR_MID_POSITIONS:
        if not argument.strip().isdigit() or int(argument) not in CONNECTIVITY:
            codes = ", ".join(map(str, CONNECTIVITY))
            raise FaultError(f"{name} needs a connectivity code ({codes}); got {spelling!r}")
        return Fault(fault_name, code=int(argument))
    try:
        seconds = float(argument)
    except ValueError:
        raise FaultError(f"{name} needs seconds, as in '{name}:2.5'; got {spelling!r}") from None
    if not (math.isfinite(seconds) and seconds >= 0):
        raise FaultError(f"{name} must be a non-negative number of seconds, got {spelling!r}")
    return Fault(fault_name, seconds)


def parse_faults(spellings: Iterable[str | Fault]) -> tuple[Fault, ...]:
    return tuple(f if isinstance(f, Fault) else parse_fault(f) for f in spellings)


def active(faults: Iterable[Fault], name: FaultName) -> bool:
    return any(f.name is name for f in faults)


def restart_seconds(faults: Iterable[Fault]) -> float | None:
    """How long a restart fault among `faults` keeps the gateway down; None: none."""
    return next((f.seconds for f in faults if f.name is FaultName.RESTART), None)


def delay_seconds(faults: Iterable[Fault]) -> float:
    """The total delay before answering reqPositions (several delays add up)."""
    return sum(f.seconds for f in faults if f.name is FaultName.DELAY)
