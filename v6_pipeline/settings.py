"""Every `V6_*` setting with its one default and one bound, and one parser per kind.

The settings modules (`defs/resources.py`, `stream/settings.py`, `alerts/settings.py`)
read their settings through the `Setting`s defined here, so that a setting reads the
same wherever it is read:

- **Unset, or set empty**: the default. Compose and Dagster's Docker run launcher pass
  an unset variable on as an empty one, so an empty value cannot mean more than unset;
  except for the settings whose empty value is documented to mean something
  (`OptionalSetting`: off, none, every account), where empty means that.
- **Blank** (spaces only): what empty means for an `OptionalSetting`; refused for every
  other setting, since it is a value nobody means (unset it, or give a value).
- **Anything else** is parsed by the setting's kind, and a bad value is a
  `SettingError`: one sentence naming the variable, the value and what is accepted.

Numbers are ASCII digits only (`int` and `float` read other scripts' digits, such as
Arabic-Indic ones, as numbers), finite, and bounded, so no value reaches a traceback
(`timedelta(seconds=1e20)` overflows). Identity settings (accounts, sec types) are
trimmed and upper-cased, as IB writes them: `V6_ACCOUNTS=du222` means DU222.

This module imports nothing heavy (no Dagster): `v6 stream --help` stays fast.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class SettingError(ValueError):
    """A setting's value is refused; `str(error)` is one sentence naming the variable,
    the value and what is accepted."""

    def __init__(self, variable: str, sentence: str) -> None:
        super().__init__(sentence)
        self.variable = variable


def shown(raw: str, *, quoted: bool = True) -> str:
    """`raw` as an error sentence quotes it: repr'd, and cut when long."""
    cut = raw if len(raw) <= 40 else f"{raw[:37]}..."
    return repr(cut) if quoted else cut


def _digits_hint(raw: str) -> str:
    return " (ASCII digits only)" if any(c.isdigit() and not c.isascii() for c in raw) else ""


class Kind(Protocol[T_co]):
    """How one kind of setting is parsed."""

    @property
    def accepted(self) -> str:
        """What a value of this kind may be, in words ("a whole number from 1 to 65535")."""
        ...

    def parse(self, variable: str, raw: str) -> T_co:
        """The value of `raw` (not blank), or a `SettingError` naming `variable`."""
        ...


# --- Kinds ---------------------------------------------------------------------------

_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_WHOLE = re.compile(r"[+-]?\d+", re.ASCII)
_NOT_FINITE = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)

DAY_S = 86400.0
TEN_YEARS_S = 10 * 365 * DAY_S


@dataclass(frozen=True)
class Seconds:
    """A finite number of seconds, `> 0` (`positive`) or `>= 0`, at most `limit`."""

    positive: bool = False
    limit: float = TEN_YEARS_S
    limit_words: str = "ten years"
    why: str = "which can only be a typo"  # why a longer one is refused

    @property
    def bounds(self) -> str:
        words = "" if self.limit_words == f"{self.limit:.0f} s" else f" ({self.limit_words})"
        return f"{'> 0' if self.positive else '>= 0'} and at most {self.limit:.0f}{words}"

    @property
    def accepted(self) -> str:
        return f"a finite number of seconds {self.bounds}"

    def parse(self, variable: str, raw: str) -> float:
        text = raw.strip()
        if _NOT_FINITE.fullmatch(text):
            raise SettingError(variable, f"{variable}={shown(raw)} must be {self.accepted}")
        if not _DECIMAL.fullmatch(text):
            raise SettingError(
                variable,
                f"{variable}={shown(raw)} is not a number of seconds{_digits_hint(raw)}: "
                f"write {self.accepted}",
            )
        value = float(text)  # a huge exponent is inf: over the limit
        if value > self.limit:
            raise SettingError(
                variable,
                f"{variable}={shown(raw)} is over {self.limit_words}, {self.why}: "
                f"write {self.accepted}",
            )
        if value < 0 or (self.positive and value == 0):
            raise SettingError(variable, f"{variable}={shown(raw)} must be {self.accepted}")
        return value


@dataclass(frozen=True)
class WholeNumber:
    """A whole number from `minimum` to `maximum`; `refusal` says what an out-of-range
    one is not ("is not a TCP port")."""

    minimum: int
    maximum: int
    refusal: str

    @property
    def accepted(self) -> str:
        return f"a whole number from {self.minimum} to {self.maximum}"

    def parse(self, variable: str, raw: str) -> int:
        text = raw.strip()
        if not _WHOLE.fullmatch(text):
            raise SettingError(
                variable,
                f"{variable}={shown(raw)} is not a whole number{_digits_hint(raw)}: "
                f"write {self.accepted}",
            )
        # int() refuses more than 4,300 digits with its own error: such a value is out
        # of every range here anyway.
        huge = len(text.lstrip("+-").lstrip("0")) > 30
        if huge or not self.minimum <= int(text) <= self.maximum:
            raise SettingError(
                variable,
                f"{variable}={shown(text, quoted=False)} {self.refusal}: write {self.accepted}",
            )
        return int(text)


@dataclass(frozen=True)
class Number:
    """A finite number `>= 0` (a quantity)."""

    example: str

    @property
    def accepted(self) -> str:
        return f"a finite number >= 0, such as {self.example}"

    def parse(self, variable: str, raw: str) -> float:
        text = raw.strip()
        if not _DECIMAL.fullmatch(text) and not _NOT_FINITE.fullmatch(text):
            raise SettingError(
                variable,
                f"{variable}={shown(raw)} is not a number{_digits_hint(raw)}: "
                f"write {self.accepted}",
            )
        value = float(text)
        if not (value >= 0 and value != float("inf")):  # nan fails every comparison
            raise SettingError(variable, f"{variable}={shown(raw)} must be {self.accepted}")
        return value


@dataclass(frozen=True)
class Names:
    """Comma- or space-separated names, trimmed, upper-cased and deduplicated.

    `pattern`: what one name looks like (upper-cased); `allowed`: the names there are
    (with `unknown_why`, why another is refused); `wildcard`: `*` means all (None);
    `required`: at least one name.
    """

    what: str  # one name's noun: "account id"
    pattern: re.Pattern[str]
    example: str
    spelling: str = ""  # how one is written, when `allowed` does not say it
    allowed: frozenset[str] | None = None
    unknown_why: str = ""
    wildcard: bool = False
    required: bool = False

    @property
    def accepted(self) -> str:
        star = ", or * for all" if self.wildcard else ""
        spelling = f" ({self.spelling})" if self.spelling else ""
        return f"{self.what}s{spelling} separated by commas or spaces, such as {self.example}{star}"

    def parse(self, variable: str, raw: str) -> tuple[str, ...] | None:
        names = tuple(dict.fromkeys(n.upper() for n in re.split(r"[\s,]+", raw) if n))
        if not names and self.required:
            raise SettingError(
                variable,
                f"{variable} is empty ({shown(raw)} names no {self.what}): write {self.accepted}",
            )
        if self.wildcard and "*" in names:
            return None
        malformed = [n for n in names if not self.pattern.fullmatch(n)]
        if malformed:
            raise SettingError(
                variable,
                f"{variable}={shown(raw)} names {shown(malformed[0])}, which is not "
                f"{_article(self.what)} {self.what}: write {self.accepted}",
            )
        unknown = [n for n in names if self.allowed is not None and n not in self.allowed]
        if unknown:
            star = ", or * for all" if self.wildcard else ""
            raise SettingError(
                variable,
                f"{variable} names {', '.join(unknown)}, which {self.unknown_why}: write "
                f"{self.what}s among {', '.join(sorted(self.allowed or ()))}{star}",
            )
        return names


@dataclass(frozen=True)
class Name:
    """One name of `names`' kind (trimmed, upper-cased)."""

    names: Names

    @property
    def accepted(self) -> str:
        spelling = f" ({self.names.spelling})" if self.names.spelling else ""
        return f"one {self.names.what}{spelling}, such as {self.names.example.split(',')[0]}"

    def parse(self, variable: str, raw: str) -> str:
        names = self.names.parse(variable, raw) or ()
        if len(names) != 1:
            raise SettingError(
                variable,
                f"{variable}={shown(raw)} names {len(names)} {self.names.what}s: "
                f"write {self.accepted}",
            )
        return names[0]


@dataclass(frozen=True)
class Text:
    """Free text (a host, a path or URI, a list another parser reads), trimmed;
    `ascii_digits`: digits in other scripts are refused (the text holds numbers)."""

    what: str
    ascii_digits: bool = False

    @property
    def accepted(self) -> str:
        return self.what

    def parse(self, variable: str, raw: str) -> str:
        if self.ascii_digits and _digits_hint(raw):
            raise SettingError(
                variable,
                f"{variable}={shown(raw)} has digits that are not ASCII: write {self.accepted}",
            )
        return raw.strip()


@dataclass(frozen=True)
class HttpUrl:
    """An http(s) URL with a host."""

    example: str

    @property
    def accepted(self) -> str:
        return f"an http(s) URL such as {self.example}"

    def parse(self, variable: str, raw: str) -> str:
        url = raw.strip()
        try:
            parts = urlsplit(url)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # noqa: B018 - a port that is not a number raises ValueError
        except ValueError:
            ok = False
        if not ok:
            raise SettingError(
                variable, f"{variable}={shown(url)} is not an http(s) URL: write {self.accepted}"
            )
        return url


@dataclass(frozen=True)
class Choice:
    """One of `choices` (case-insensitive), lower-cased; `accepted` says what each means."""

    choices: tuple[str, ...]
    accepted: str

    def parse(self, variable: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in self.choices:
            raise SettingError(
                variable,
                f"{variable}={shown(raw)} is not {' or '.join(self.choices)}: "
                f"write {self.accepted}",
            )
        return value


@dataclass(frozen=True)
class Flag:
    """Yes (1, true, yes, on) or no (0, false, no, off); empty is no."""

    means: str  # what yes means

    @property
    def accepted(self) -> str:
        return f"1 to {self.means}, or 0 (or nothing) not to"

    def parse(self, variable: str, raw: str) -> bool:
        value = raw.strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise SettingError(
            variable, f"{variable}={shown(raw)} is neither yes nor no: write {self.accepted}"
        )


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


# --- Settings ------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting(Generic[T]):
    """A variable with a default and a kind; a blank value is refused."""

    variable: str
    default: str  # as a user would write it
    kind: Kind[T]

    def parse(self, raw: str) -> T:
        """The value of `raw` (a field's text: unset already replaced by the default)."""
        if not raw.strip():
            raise SettingError(
                self.variable,
                f"{self.variable}={shown(raw)} is blank: unset it to use the default "
                f"({self.default}), or write {self.kind.accepted}",
            )
        return self.kind.parse(self.variable, raw)

    def read(self, environ: Mapping[str, str]) -> T:
        """The value in `environ`: unset or empty is the default."""
        return self.parse(environ.get(self.variable) or self.default)

    def value(self) -> T:
        """The default's value."""
        return self.parse(self.default)


@dataclass(frozen=True)
class OptionalSetting(Generic[T]):
    """A variable whose empty (or blank) value means something (`empty`, in words), and
    is parsed as None; so do `off_words` (`never`). An unset variable is the default."""

    variable: str
    default: str
    kind: Kind[T]
    empty: str  # what empty means: "off", "every managed account"
    off_words: tuple[str, ...] = ()

    def parse(self, raw: str) -> T | None:
        text = raw.strip()
        if not text or text.lower() in self.off_words:
            return None
        return self.kind.parse(self.variable, raw)

    def read(self, environ: Mapping[str, str]) -> T | None:
        """The value in `environ`: unset is the default; empty is `empty` (None)."""
        raw = environ.get(self.variable)
        return self.parse(self.default if raw is None else raw)

    def value(self) -> T | None:
        return self.parse(self.default)

    @property
    def empty_means_off(self) -> bool:
        """Whether empty differs from unset (a default that is not empty)."""
        return bool(self.default)


AnySetting = Setting[Any] | OptionalSetting[Any]

# IB's security types (TWS API `Contract.secType`).
IB_SEC_TYPES = frozenset(
    {
        "STK", "OPT", "FUT", "FOP", "CASH", "BOND", "WAR", "IND", "CFD", "CMDTY", "FUND",
        "BAG", "CRYPTO", "IOPT", "NEWS", "BILL", "FIXED", "SLB", "CONTFUT", "EC",
    }
)  # fmt: skip

SEVERITIES = ("critical", "warning")
CLIENT_IDS = WholeNumber(0, 2**31 - 1, "must be between 0 and 2^31-1 (an IB API client id)")
_ACCOUNTS = Names(
    "account id",
    re.compile(r"[A-Z0-9][A-Z0-9._-]*", re.ASCII),
    "DU111,DU222",
    spelling="ASCII letters and digits",
)
# A live window must be judged within its 5 minutes: settle and confirm waits are short.
_WAIT = Seconds(
    limit=60.0, limit_words="60 s", why="and a live window must be judged well within its 5 minutes"
)
# A stream's flush, heartbeat and liveness threshold: a day apart is a typo.
_STREAM_SECONDS = Seconds(positive=True, limit=DAY_S, limit_words="a day")

# The IB Gateway.
IB_HOST = Setting("V6_IB_HOST", "127.0.0.1", Text("the gateway's host name or address"))
IB_PORT = Setting("V6_IB_PORT", "4002", WholeNumber(1, 65535, "is not a TCP port"))
IB_CLIENT_ID = Setting("V6_IB_CLIENT_ID", "606", CLIENT_IDS)  # far from trading clients' 0/1/2
IB_TIMEOUT_S = Setting("V6_IB_TIMEOUT_S", "30", Seconds(positive=True))
ACCOUNTS = OptionalSetting("V6_ACCOUNTS", "", _ACCOUNTS, empty="every managed account")

# The lake.
LAKE_DIR = Setting("V6_LAKE_DIR", "data/lake", Text("the folder (or URI) of the Delta tables"))
DEFAULT_ACCOUNT = OptionalSetting("V6_DEFAULT_ACCOUNT", "", Name(_ACCOUNTS), empty="none")

# What counts as a discrepancy.
SEC_TYPES = Setting(
    "V6_SEC_TYPES",
    "OPT",
    Names(
        "sec type",
        re.compile(r"[A-Z]+", re.ASCII),
        "OPT,STK",
        allowed=IB_SEC_TYPES,
        unknown_why="IB does not use (a sec type IB never reports would silently judge nothing)",
        wildcard=True,
        required=True,
    ),
)
ABS_TOL = Setting("V6_ABS_TOL", "0.001", Number("0.001"))
ALLOW_LARGE_TOL = OptionalSetting(
    "V6_ALLOW_LARGE_TOL", "", Flag("accept a V6_ABS_TOL of one contract or more"), empty="no"
)
STALE_AFTER_S = OptionalSetting("V6_STALE_AFTER_S", "", Seconds(), empty="off")
SETTLE_S = Setting("V6_SETTLE_S", "3", _WAIT)
CONFIRM_AFTER_S = Setting("V6_CONFIRM_AFTER_S", "5", _WAIT)

# Alerts.
ALERT_URLS = OptionalSetting(
    "V6_ALERT_URLS", "", Text("Apprise URLs separated by commas or spaces"), empty="none"
)
ALERT_MIN_SEVERITY = Setting(
    "V6_ALERT_MIN_SEVERITY",
    "critical",
    Choice(
        SEVERITIES,
        "critical (the default: only naked positions and pipeline failures are sent) or "
        "warning (also mismatches)",
    ),
)
ALERT_REMIND_S = OptionalSetting(
    "V6_ALERT_REMIND_S",
    "3600",
    Seconds(positive=True),
    empty="never",
    off_words=("0", "never", "off"),
)
ALERT_SILENCE_S = Setting("V6_ALERT_SILENCE_S", "900", Seconds(positive=True))
# A day of retries outlasts an outage of a chat service; an older alert is news nobody
# can act on any more.
ALERT_GIVE_UP_S = Setting("V6_ALERT_GIVE_UP_S", "86400", Seconds(positive=True))
HEARTBEAT_URL = OptionalSetting(
    "V6_HEARTBEAT_URL", "", HttpUrl("https://hc-ping.com/<uuid>"), empty="none"
)
UI_URL = Setting("V6_UI_URL", "http://127.0.0.1:3000", HttpUrl("http://127.0.0.1:3000"))
IB_QUIET_WINDOWS = OptionalSetting(
    "V6_IB_QUIET_WINDOWS",
    "",
    Text("daily windows such as 23:40-00:15 America/New_York", ascii_digits=True),
    empty="none",
)

# `v6 stream`.
STREAM_CLIENT_ID = Setting("V6_STREAM_CLIENT_ID", "607", CLIENT_IDS)
STREAM_FLUSH_S = Setting("V6_STREAM_FLUSH_S", "1", _STREAM_SECONDS)
STREAM_HEARTBEAT_S = Setting("V6_STREAM_HEARTBEAT_S", "30", _STREAM_SECONDS)
STREAM_DEAD_AFTER_S = OptionalSetting(
    "V6_STREAM_DEAD_AFTER_S", "120", _STREAM_SECONDS, empty="off (no liveness check)"
)

SETTINGS: dict[str, AnySetting] = {
    s.variable: s
    for s in (
        IB_HOST, IB_PORT, IB_CLIENT_ID, IB_TIMEOUT_S, ACCOUNTS,
        LAKE_DIR, DEFAULT_ACCOUNT,
        SEC_TYPES, ABS_TOL, ALLOW_LARGE_TOL, STALE_AFTER_S, SETTLE_S, CONFIRM_AFTER_S,
        ALERT_URLS, ALERT_MIN_SEVERITY, ALERT_REMIND_S, ALERT_SILENCE_S, ALERT_GIVE_UP_S,
        HEARTBEAT_URL, UI_URL, IB_QUIET_WINDOWS,
        STREAM_CLIENT_ID, STREAM_FLUSH_S, STREAM_HEARTBEAT_S, STREAM_DEAD_AFTER_S,
    )
}  # fmt: skip


def check_environment(variables: Iterable[str], environ: Mapping[str, str]) -> None:
    """Read each of `variables` (those of `SETTINGS`) from `environ`: the first bad one is
    a `SettingError`."""
    for variable in variables:
        SETTINGS[variable].read(environ)
