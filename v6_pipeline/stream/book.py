"""The book: what `position_updates` holds as the stream sees it, and which IB messages
change it.

Pure: no I/O and no clock (times come with the data). The stream seeds a book from
Delta's latest rows on every (re)connect and moves it with every row it writes. A message
becomes a row only when it changes its key's quantity (or average cost): a message
delivered again is not a change, so re-delivery writes nothing.

Two kinds of input are told apart:

- A complete snapshot is IB's word. Its rows are believed, contract details included,
  and a key Delta holds open in an account the snapshot covers but that IB no longer
  lists is closed: a change missed while the stream was away is repaired.
- A lone message of the subscription is checked first. Bad data (an account the gateway
  does not manage, a quantity that is not a finite number, no conid or one beyond int64,
  no symbol) and a contract that contradicts the book (a conid reported as another
  contract, a contract under a new conid) are refused, never written. Unless the message
  is foreign (another account), a refusal asks for a fresh snapshot: the message may
  have carried a change, and only a complete snapshot may say which.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from v6_pipeline.stream.updates import CONID_MAX, Contract, Key, PositionUpdate


@dataclass(frozen=True, slots=True)
class Refused:
    """A message that was not written, and why."""

    message: PositionUpdate
    reason: str
    resync: bool  # a fresh snapshot is needed to know the truth

    def describe(self) -> str:
        return f"{self.reason}; raw fields: {self.message.raw()}"


@dataclass(frozen=True, slots=True)
class Repair:
    """What a snapshot writes: the rows, the quantity each key had before (absent: no
    row), and the messages it refused."""

    updates: list[PositionUpdate]
    before: dict[Key, float]
    refused: list[Refused]


class Book:
    """The latest row per (account, conid), and the contract each key stands for.

    Contracts are known per account: a snapshot that disagreed with itself across
    accounts must not make every later message look like a contradiction.
    """

    def __init__(self, rows: Iterable[PositionUpdate] = ()) -> None:
        self._latest: dict[Key, PositionUpdate] = {}
        self._contracts: dict[Key, Contract] = {}
        self._conids: dict[tuple[str, Contract], set[int]] = {}
        for row in rows:
            self._hold(row)

    def latest(self, key: Key) -> PositionUpdate | None:
        return self._latest.get(key)

    def __len__(self) -> int:
        return len(self._latest)

    def overlay(self, rows: Iterable[PositionUpdate]) -> None:
        """Rows written but not yet in the read Delta answer (a batch still pending)."""
        for row in rows:
            held = self._latest.get(row.key)
            if held is None or row.timestamp >= held.timestamp:
                self._hold(row)

    def observe(
        self, message: PositionUpdate, accounts: Sequence[str]
    ) -> PositionUpdate | Refused | None:
        """A subscription message: the row to write, a refusal, or None (no change)."""
        refusal = _bad(message, accounts) or self._contradiction(message)
        if refusal is not None:
            return refusal
        return self._apply(message)

    def repair(
        self, snapshot: Iterable[PositionUpdate], accounts: Sequence[str], taken_at: datetime
    ) -> Repair:
        """The rows that bring the book to a complete snapshot taken at `taken_at`
        (its rows carry that time), closes included; `accounts` are those it covers."""
        before = {key: held.position for key, held in self._latest.items()}
        updates: list[PositionUpdate] = []
        refused: list[Refused] = []
        listed: set[Key] = set()
        for message in snapshot:
            refusal = _bad(message, accounts)
            if refusal is not None:
                refused.append(refusal)
                continue
            listed.add(message.key)
            self._learn(message)  # IB's complete answer says what a conid is
            row = self._apply(message)
            if row is not None:
                updates.append(row)
        covered = set(accounts)
        gone = [
            held
            for key, held in self._latest.items()
            if key[0] in covered and key not in listed and held.position != 0
        ]
        for held in gone:
            close = held.closed(taken_at)
            self._hold(close)
            updates.append(close)
        changed = {u.key for u in updates}
        return Repair(updates, {k: q for k, q in before.items() if k in changed}, refused)

    # --- inside ----------------------------------------------------------------------

    def _apply(self, message: PositionUpdate) -> PositionUpdate | None:
        if not _changes(self._latest.get(message.key), message):
            return None
        self._hold(message)
        return message

    def _hold(self, row: PositionUpdate) -> None:
        self._latest[row.key] = row
        self._learn(row)

    def _learn(self, row: PositionUpdate) -> None:
        contract = row.contract
        before = self._contracts.get(row.key)
        if before == contract:
            return
        if before is not None:
            self._conids[(row.account, before)].discard(row.conid)
        self._contracts[row.key] = contract
        self._conids.setdefault((row.account, contract), set()).add(row.conid)

    def _contradiction(self, message: PositionUpdate) -> Refused | None:
        contract = message.contract
        known = self._contracts.get(message.key)
        if known is not None and known != contract:
            return Refused(
                message,
                f"conid {message.conid} in {message.account} is {known.describe()} in the "
                f"book, and this message says {contract.describe()}",
                resync=True,
            )
        others = self._conids.get((message.account, contract), set()) - {message.conid}
        if known is None and others and contract.sec_type:
            return Refused(
                message,
                f"{contract.describe()} in {message.account} is conid "
                f"{', '.join(map(str, sorted(others)))} in the book, and this message gives it "
                f"conid {message.conid}",
                resync=True,
            )
        return None


def _bad(message: PositionUpdate, accounts: Sequence[str]) -> Refused | None:
    """Data no row may be made of, whatever the book holds."""
    if message.account not in accounts:
        return Refused(
            message,
            f"account {message.account!r} is not one the gateway manages "
            f"({', '.join(accounts) or 'none announced'})",
            resync=False,  # a snapshot would not list it either
        )
    if not math.isfinite(message.position):
        return Refused(message, "the quantity is not a finite number", resync=True)
    if message.conid <= 0:
        return Refused(message, "the conid is not a contract id", resync=True)
    if message.conid > CONID_MAX:  # ib_async takes any integer; position_updates holds int64
        return Refused(
            message,
            f"the conid {message.conid} is beyond the 64-bit range position_updates stores",
            resync=True,
        )
    if not message.symbol.strip():
        return Refused(message, "the symbol is empty", resync=True)
    return None


def _changes(held: PositionUpdate | None, message: PositionUpdate) -> bool:
    """Whether `message` says something the held row does not (absent = flat)."""
    if held is None:
        return message.position != 0
    if held.position != message.position:
        return True
    # a flat key's cost means nothing (IB sends 0, an older writer may have left none)
    return message.position != 0 and held.avg_cost != message.avg_cost
