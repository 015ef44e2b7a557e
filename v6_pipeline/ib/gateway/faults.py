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


# How each is spelled on the command line, for help texts and error messages.
FAULT_SPELLINGS: tuple[str, ...] = tuple(
    f"{name}:SECONDS" if name is FaultName.DELAY else str(name) for name in FaultName
)


class FaultError(ValueError):
    """An unknown fault name or a bad delay."""


@dataclass(frozen=True, slots=True)
class Fault:
    name: FaultName
    seconds: float = 0.0

    def __str__(self) -> str:
        return f"{self.name}:{self.seconds:g}" if self.name is FaultName.DELAY else str(self.name)


def parse_fault(spelling: str) -> Fault:
    """`"no-position-end"` or `"delay:2.5"` -> Fault."""
    name, _, argument = spelling.strip().partition(":")
    try:
        fault_name = FaultName(name)
    except ValueError:
        raise FaultError(
            f"unknown fault {spelling!r}; known: {', '.join(FAULT_SPELLINGS)}"
        ) from None
    if fault_name is not FaultName.DELAY:
        if argument:
            raise FaultError(f"fault {name!r} takes no argument, got {spelling!r}")
        return Fault(fault_name)
    try:
        seconds = float(argument)
    except ValueError:
        raise FaultError(f"delay needs seconds, as in 'delay:2.5'; got {spelling!r}") from None
    if not (math.isfinite(seconds) and seconds >= 0):
        raise FaultError(f"delay must be a non-negative number of seconds, got {spelling!r}")
    return Fault(fault_name, seconds)


def parse_faults(spellings: Iterable[str | Fault]) -> tuple[Fault, ...]:
    return tuple(f if isinstance(f, Fault) else parse_fault(f) for f in spellings)


def active(faults: Iterable[Fault], name: FaultName) -> bool:
    return any(f.name is name for f in faults)


def delay_seconds(faults: Iterable[Fault]) -> float:
    """The total delay before answering reqPositions (several delays add up)."""
    return sum(f.seconds for f in faults if f.name is FaultName.DELAY)
