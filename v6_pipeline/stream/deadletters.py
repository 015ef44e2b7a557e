"""`stream_dead_letters`: the position messages `v6 stream` set aside, one row each.

A message is set aside when the book refuses it (bad data, a contract that contradicts
the book, an account the gateway does not manage) or when `position_updates` cannot
store its row (a conid beyond int64, say): the rest of the stream keeps flowing, and
nothing is dropped without a trace. Every field is kept as received (`raw`), and the
conid as text, since it may be one no int64 column can hold. A small Delta table beside
the others, so it lives wherever the lake does (a directory or S3); rows are appended
with the heartbeat, and read by a person (or `read_dead_letters`) when the
`position_stream_is_alive` check or the stream's log points here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import polars as pl

from v6_pipeline.lake import Lake
from v6_pipeline.stream.updates import PositionUpdate


class Kind(StrEnum):
    REFUSED = "refused"  # the book would not make a row of it
    UNWRITABLE = "unwritable"  # position_updates could not store its row


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One set-aside message, in the table's terms (any message can be made one)."""

    stream_id: str
    set_aside_at: datetime
    kind: Kind
    reason: str
    received_at: datetime | None
    account: str | None
    conid: str | None
    symbol: str | None
    position: float | None
    raw: str

    @classmethod
    def of(
        cls, stream_id: str, kind: Kind, reason: str, message: PositionUpdate, at: datetime
    ) -> DeadLetter:
        """The row for `message`; a field the table cannot type is kept in `raw` only."""
        stamp = message.timestamp
        return cls(
            stream_id=stream_id,
            set_aside_at=at,
            kind=kind,
            reason=reason,
            received_at=stamp if isinstance(stamp, datetime) and stamp.tzinfo else None,
            account=str(message.account),
            conid=str(message.conid),
            symbol=str(message.symbol),
            position=_number(message.position),
            raw=message.raw(),
        )

    def row(self) -> dict[str, object]:
        return {
            "stream_id": self.stream_id,
            "set_aside_at": self.set_aside_at,
            "kind": str(self.kind),
            "reason": self.reason,
            "received_at": self.received_at,
            "account": self.account,
            "conid": self.conid,
            "symbol": self.symbol,
            "position": self.position,
            "raw": self.raw,
        }


def _number(value: object) -> float | None:
    """`value` as a float (NaN and inf kept: they may be why it was set aside), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer past float's range: `raw` keeps it
        return None


def write_dead_letters(lake_dir: str | os.PathLike[str], letters: list[DeadLetter]) -> None:
    """Append `letters` (the table is created on the first)."""
    if letters:
        Lake(lake_dir).append_dead_letters([letter.row() for letter in letters])


def read_dead_letters(lake_dir: str | os.PathLike[str]) -> pl.DataFrame:
    """Every dead letter, oldest first; an empty frame when none was ever set aside."""
    return Lake(lake_dir).read_dead_letters()
