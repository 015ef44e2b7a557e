"""The portfolio a gateway serves: accounts and their positions, from JSON or YAML.

Every string goes on the wire, so every string is checked for printable ASCII
here, once, with a message naming the entry and field.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_REQUIRED = ("account", "conid", "symbol", "sec_type", "position")
_TEXT_FIELDS = (
    "account",
    "symbol",
    "sec_type",
    "expiry",
    "right",
    "multiplier",
    "exchange",
    "currency",
    "local_symbol",
    "trading_class",
)
_NUMBER_FIELDS = ("position", "strike", "avg_cost")
# IB's contract ids are 32-bit; the lake stores them as int64, so wider ones could never be stored.
_CONID_MIN, _CONID_MAX = -(2**63), 2**63 - 1


class PortfolioError(ValueError):
    """A portfolio that cannot be served; the message names the entry and field."""


@dataclass(frozen=True, slots=True)
class PortfolioPosition:
    """One position as IB reports it: a contract held by an account.

    `avg_cost` includes the multiplier, as in IB's position message.
    A quantity of 0 is a position closed earlier today.
    """

    account: str
    conid: int
    symbol: str
    sec_type: str
    position: float
    expiry: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    currency: str = ""
    local_symbol: str = ""
    trading_class: str = ""
    avg_cost: float = 0.0

    @property
    def key(self) -> tuple[str, int]:
        return (self.account, self.conid)

    def closed(self) -> PortfolioPosition:
        """The same contract, flat: what IB sends when a position is closed."""
        return dataclasses.replace(self, position=0.0, avg_cost=0.0)


@dataclass(frozen=True, slots=True)
class Portfolio:
    """What the gateway serves. Checked on construction, so a built one is servable."""

    accounts: tuple[str, ...]
    positions: tuple[PortfolioPosition, ...]

    def __post_init__(self) -> None:
        if not self.accounts:
            # ib_async only finishes connecting on a non-empty managedAccounts.
            raise PortfolioError("accounts: at least one account is needed")
        for index, account in enumerate(self.accounts):
            _check_text(f"accounts[{index}]", account)
            if not account or "," in account:
                # managedAccounts is one comma-separated field
                raise PortfolioError(f"accounts[{index}]: must be non-empty, without commas")
        managed = set(self.accounts)
        first_index: dict[tuple[str, int], int] = {}
        for index, row in enumerate(self.positions):
            for name in _TEXT_FIELDS:
                _check_text(f"positions[{index}].{name}", getattr(row, name))
            if row.account not in managed:
                raise PortfolioError(
                    f"positions[{index}].account: {row.account!r} is not in accounts"
                )
            if not _CONID_MIN <= row.conid <= _CONID_MAX:
                raise PortfolioError(
                    f"positions[{index}].conid: must fit in 64 bits (signed), got {row.conid}"
                )
            for name in _NUMBER_FIELDS:
                if not math.isfinite(getattr(row, name)):
                    raise PortfolioError(f"positions[{index}].{name}: must be a finite number")
            earlier = first_index.setdefault(row.key, index)
            if earlier != index:
                raise PortfolioError(
                    f"positions[{index}]: duplicates positions[{earlier}] "
                    f"(account {row.account}, conid {row.conid})"
                )

    @classmethod
    def of(cls, positions: Iterable[PortfolioPosition], accounts: Iterable[str] = ()) -> Portfolio:
        """A portfolio whose accounts default to the positions' distinct accounts."""
        rows = tuple(positions)
        names = tuple(accounts) or tuple(dict.fromkeys(p.account for p in rows))
        return cls(names, rows)

    def in_account(self, account: str) -> tuple[PortfolioPosition, ...]:
        return tuple(p for p in self.positions if p.account == account)

    def changes_since(self, before: Portfolio) -> tuple[PortfolioPosition, ...]:
        """What IB would push to move a client from `before` to this portfolio:
        new and changed positions, then the ones gone, as quantity 0."""
        old = {p.key: p for p in before.positions}
        changed = [p for p in self.positions if old.get(p.key) != p]
        current = {p.key for p in self.positions}
        gone = [p.closed() for key, p in old.items() if key not in current and p.position != 0]
        return (*changed, *gone)


def _check_text(where: str, value: str) -> None:
    # The wire is NUL-separated ASCII; ibapi also refuses non-printable text.
    if not (value.isascii() and value.isprintable()):
        raise PortfolioError(f"{where}: must be printable ASCII, got {value!r}")


# --- reading files --------------------------------------------------------------


def load_portfolio(path: str | Path) -> Portfolio:
    """Read a portfolio from a JSON file (or YAML, by a .yaml/.yml suffix)."""
    path = Path(path)
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PortfolioError(f"{path}: cannot read: {exc}") from exc
    obj = _parse_text(path, content)
    try:
        return parse_portfolio(obj)
    except PortfolioError as exc:
        raise PortfolioError(f"{path}: {exc}") from exc


def _parse_text(path: Path, content: str) -> Any:
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml  # only YAML portfolios pay for the import

        try:
            return yaml.safe_load(content)
        except yaml.YAMLError as exc:
            raise PortfolioError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return json.loads(content)
    except json.JSONDecodeError as exc:
        raise PortfolioError(f"{path}: not valid JSON: {exc}") from exc


def parse_portfolio(obj: Any) -> Portfolio:
    """A portfolio from parsed JSON/YAML: `{"accounts": [...], "positions": [...]}`.

    Only account, conid, symbol, sec_type and position are required per position;
    accounts default to the positions' distinct accounts.
    """
    if not isinstance(obj, Mapping):
        raise PortfolioError(f"expected a mapping with 'positions', got {type(obj).__name__}")
    unknown = sorted(set(obj) - {"accounts", "positions"})
    if unknown:
        raise PortfolioError(f"unknown top-level field {unknown[0]!r}")
    entries = obj.get("positions", [])
    if not isinstance(entries, list):
        raise PortfolioError("positions: expected a list")
    accounts = obj.get("accounts", [])
    if not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts):
        raise PortfolioError("accounts: expected a list of account names")
    positions = [_parse_position(index, entry) for index, entry in enumerate(entries)]
    return Portfolio.of(positions, accounts)


_FIELDS = {f.name: f for f in dataclasses.fields(PortfolioPosition)}


def _parse_position(index: int, entry: Any) -> PortfolioPosition:
    where = f"positions[{index}]"
    if not isinstance(entry, Mapping):
        raise PortfolioError(f"{where}: expected a mapping, got {type(entry).__name__}")
    for name in entry:
        if name not in _FIELDS:
            raise PortfolioError(f"{where}: unknown field {name!r}")
    for name in _REQUIRED:
        if name not in entry:
            raise PortfolioError(f"{where}.{name}: required field missing")
    values: dict[str, Any] = {}
    for name, value in entry.items():
        kind = _FIELDS[name].type
        if kind == "int":
            values[name] = _integer(f"{where}.{name}", value)
        elif kind == "float":
            values[name] = _number(f"{where}.{name}", value)
        else:
            values[name] = _string(f"{where}.{name}", value)
    return PortfolioPosition(**values)


def _integer(where: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise PortfolioError(f"{where}: expected an integer, got {value!r}")


def _number(where: str, value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an integer past float's range
            raise PortfolioError(f"{where}: must be a finite number") from None
    raise PortfolioError(f"{where}: expected a number, got {value!r}")


def _string(where: str, value: Any) -> str:
    # YAML reads an unquoted expiry or multiplier (20270115, 100) as an integer
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return value
    raise PortfolioError(f"{where}: expected a string, got {value!r}")
