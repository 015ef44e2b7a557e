"""Resources: IB, the lake, and the reconciliation settings, from the `V6_*` settings.

Each setting has one default: the resource field's. `resources_from_env` passes an
`EnvVar` only for the variables that are set (the UI then shows where a value came
from), and `check_settings` parses every value once, when Dagster loads the code
location, so a bad value is an error naming the variable in the UI, not a surprise
in a run at 3 a.m. Fields that are numbers in spirit are strings: Dagster's `EnvVar`
has a string and an int form only.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import ClassVar

import dagster as dg

from v6_pipeline.alerts.settings import AlertSettings
from v6_pipeline.ib.snapshot import IBSnapshot, take_snapshot
from v6_pipeline.lake import Lake

# IB's security types (TWS API `Contract.secType`).
IB_SEC_TYPES = frozenset(
    {
        "STK", "OPT", "FUT", "FOP", "CASH", "BOND", "WAR", "IND", "CFD", "CMDTY", "FUND",
        "BAG", "CRYPTO", "IOPT", "NEWS", "BILL", "FIXED", "SLB", "CONTFUT", "EC",
    }
)  # fmt: skip
_MAX_SECONDS = 10 * 365 * 86400  # a duration longer than ten years is a typo
_MAX_WAIT_S = 60.0  # settle and confirm waits: a live run must end within its window


class _Settings(dg.ConfigurableResource):
    """A resource whose fields are `V6_*` settings (`ENV`: field -> variable)."""

    ENV: ClassVar[dict[str, str]] = {}
    # Variables whose empty value means something (off), unlike an unset one.
    EMPTY_MEANS_OFF: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **given: str) -> _Settings:
        """The settings whose variables are set in `environ`, `given` fields overriding."""
        fields: dict[str, object] = {}
        for field, variable in cls.ENV.items():
            if variable in cls.EMPTY_MEANS_OFF and not environ.get(variable, "x").strip():
                fields[field] = ""  # set empty: off (Dagster reads "" as unset)
                continue
            if environ.get(variable, "").strip():
                annotation = cls.model_fields[field].annotation
                fields[field] = (
                    dg.EnvVar.int(variable) if annotation is int else dg.EnvVar(variable)
                )
        return cls(**{**fields, **given})

    def check(self) -> None:
        """Raise ValueError naming the variable of the first bad setting."""


def _seconds(
    variable: str, raw: str, *, positive: bool = False, limit: float = _MAX_SECONDS
) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{variable}={raw!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(
            f"{variable}={raw!r} must be a finite number of seconds {'> 0' if positive else '>= 0'}"
        )
    if value > limit:
        if limit == _MAX_SECONDS:
            raise ValueError(f"{variable}={raw!r} is over ten years; write the value in seconds")
        raise ValueError(
            f"{variable}={raw!r} is over {limit:g} s: a live window must be judged well "
            "within its 5 minutes"
        )
    return value


def _names(raw: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p.strip() for p in raw.replace(" ", ",").split(",") if p.strip()))


class IBGatewayResource(_Settings):
    """IB Gateway or TWS over its TCP API, read-only: one complete position snapshot."""

    ENV: ClassVar[dict[str, str]] = {
        "host": "V6_IB_HOST",
        "port": "V6_IB_PORT",
        "client_id": "V6_IB_CLIENT_ID",
        "timeout_s": "V6_IB_TIMEOUT_S",
        "accounts": "V6_ACCOUNTS",
    }

    host: str = "127.0.0.1"
    port: int = 4002
    client_id: int = 606  # far from the 0/1/2 trading clients usually take
    timeout_s: str = "30"
    accounts: str = ""  # empty: every account the gateway manages

    def check(self) -> None:
        if not self.host.strip():
            raise ValueError("V6_IB_HOST is empty; write the gateway's host, e.g. 127.0.0.1")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"V6_IB_PORT={self.port} is not a TCP port (1-65535)")
        if not 0 <= self.client_id < 2**31:
            raise ValueError(f"V6_IB_CLIENT_ID={self.client_id} must be between 0 and 2^31-1")
        self.timeout()

    def timeout(self) -> float:
        return _seconds("V6_IB_TIMEOUT_S", self.timeout_s, positive=True)

    def account_filter(self) -> tuple[str, ...] | None:
        """The accounts to judge (`V6_ACCOUNTS`); `None`: every managed account."""
        return _names(self.accounts) or None

    def snapshot(self) -> IBSnapshot:
        return take_snapshot(self.host, self.port, self.client_id, timeout_s=self.timeout())


class LakeResource(_Settings):
    """The Delta tables under `lake_dir`."""

    ENV: ClassVar[dict[str, str]] = {
        "lake_dir": "V6_LAKE_DIR",
        "default_account": "V6_DEFAULT_ACCOUNT",
    }

    lake_dir: str = "data/lake"
    default_account: str = ""

    def check(self) -> None:
        if not self.lake_dir.strip():
            raise ValueError("V6_LAKE_DIR is empty; write the folder (or URI) of the tables")

    def get_lake(self) -> Lake:
        return Lake(self.lake_dir, default_account=self.default_account or None)


class ReconciliationSettings(_Settings):
    """What counts as a discrepancy: scope, tolerance, staleness."""

    ENV: ClassVar[dict[str, str]] = {
        "sec_types": "V6_SEC_TYPES",
        "abs_tol": "V6_ABS_TOL",
        "allow_large_tol": "V6_ALLOW_LARGE_TOL",
        "stale_after_s": "V6_STALE_AFTER_S",
        "stream_dead_after_s": "V6_STREAM_DEAD_AFTER_S",
        "settle_s": "V6_SETTLE_S",
        "confirm_after_s": "V6_CONFIRM_AFTER_S",
    }
    EMPTY_MEANS_OFF: ClassVar[frozenset[str]] = frozenset({"V6_STREAM_DEAD_AFTER_S"})

    sec_types: str = "OPT"
    abs_tol: str = "0.001"
    allow_large_tol: str = ""  # "1": accept a tolerance of a whole contract or more
    stale_after_s: str = ""
    stream_dead_after_s: str = "120"  # empty: no streamer, no liveness check
    # A live window's Delta read waits this long after the snapshot (still as of it), so
    # a fill the streamer is still writing is seen.
    settle_s: str = "3"
    # A live window with a critical candidate takes a second snapshot this long after the
    # first; a key is NAKED only if naked in both.
    confirm_after_s: str = "5"

    def check(self) -> None:
        self.scope()
        self.tolerance()
        self.stale_after()
        self.stream_dead_after()
        self.settle()
        self.confirm_after()

    def settle(self) -> timedelta:
        return timedelta(seconds=_seconds("V6_SETTLE_S", self.settle_s, limit=_MAX_WAIT_S))

    def confirm_after(self) -> timedelta:
        return timedelta(
            seconds=_seconds("V6_CONFIRM_AFTER_S", self.confirm_after_s, limit=_MAX_WAIT_S)
        )

    def stream_dead_after(self) -> timedelta | None:
        if not self.stream_dead_after_s.strip():
            return None
        return timedelta(
            seconds=_seconds("V6_STREAM_DEAD_AFTER_S", self.stream_dead_after_s, positive=True)
        )

    def scope(self) -> tuple[str, ...] | None:
        """The sec types in scope; `None` means all (`*`)."""
        types = tuple(t.upper() for t in _names(self.sec_types))
        if not types:
            raise ValueError("V6_SEC_TYPES is empty; write e.g. OPT or OPT,STK, or * for all")
        if "*" in types:
            return None
        unknown = [t for t in types if t not in IB_SEC_TYPES]
        if unknown:
            raise ValueError(
                f"V6_SEC_TYPES names {', '.join(unknown)}, which IB does not use: a sec type "
                f"IB never reports would silently judge nothing. Use IB's names "
                f"({', '.join(sorted(IB_SEC_TYPES))}) or * for all"
            )
        return types

    def tolerance(self) -> float:
        try:
            value = float(self.abs_tol)
        except ValueError:
            raise ValueError(f"V6_ABS_TOL={self.abs_tol!r} is not a number") from None
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"V6_ABS_TOL={self.abs_tol!r} must be a finite number >= 0")
        if value >= 1 and self.allow_large_tol.strip().lower() not in ("1", "true", "yes"):
            raise ValueError(
                f"V6_ABS_TOL={self.abs_tol!r} is a whole contract or more: a closed leg "
                "would no longer count as open, hiding naked positions. Use a tolerance "
                "below 1 (default 0.001), or set V6_ALLOW_LARGE_TOL=1 if you mean it"
            )
        return value

    def stale_after(self) -> timedelta | None:
        if not self.stale_after_s.strip():
            return None
        return timedelta(seconds=_seconds("V6_STALE_AFTER_S", self.stale_after_s))

    def describe(self) -> str:
        scope = self.scope()
        stale = self.stale_after()
        return (
            f"sec types {'all' if scope is None else ','.join(scope)}, "
            f"tolerance {self.tolerance():g}, "
            f"stale after {'off' if stale is None else f'{stale.total_seconds():g} s'}, "
            f"settle {self.settle().total_seconds():g} s, "
            f"confirm after {self.confirm_after().total_seconds():g} s"
        )


_ALERT_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(AlertSettings.parse).parameters.items()
}


class AlertsResource(_Settings):
    """Where alerts go and when (README, "Alerts"); parsed by `AlertSettings.parse`."""

    ENV: ClassVar[dict[str, str]] = {
        "urls": "V6_ALERT_URLS",
        "min_severity": "V6_ALERT_MIN_SEVERITY",
        "remind_s": "V6_ALERT_REMIND_S",
        "silence_s": "V6_ALERT_SILENCE_S",
        "give_up_s": "V6_ALERT_GIVE_UP_S",
        "heartbeat_url": "V6_HEARTBEAT_URL",
        "ui_url": "V6_UI_URL",
        "quiet_windows": "V6_IB_QUIET_WINDOWS",
    }
    EMPTY_MEANS_OFF: ClassVar[frozenset[str]] = frozenset({"V6_ALERT_REMIND_S"})

    # One default per setting: `AlertSettings.parse`'s.
    urls: str = _ALERT_DEFAULTS["urls"]
    min_severity: str = _ALERT_DEFAULTS["min_severity"]
    remind_s: str = _ALERT_DEFAULTS["remind_s"]
    silence_s: str = _ALERT_DEFAULTS["silence_s"]
    give_up_s: str = _ALERT_DEFAULTS["give_up_s"]
    heartbeat_url: str = _ALERT_DEFAULTS["heartbeat_url"]
    ui_url: str = _ALERT_DEFAULTS["ui_url"]
    quiet_windows: str = _ALERT_DEFAULTS["quiet_windows"]

    def check(self) -> None:
        self.get_settings()

    def get_settings(self) -> AlertSettings:
        return AlertSettings.parse(**{field: getattr(self, field) for field in self.ENV})


RESOURCES: dict[str, type[_Settings]] = {
    "ib": IBGatewayResource,
    "lake": LakeResource,
    "settings": ReconciliationSettings,
    "alerts": AlertsResource,
}


def resources_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, _Settings]:
    """The resources as the `V6_*` settings configure them (README, "Settings")."""
    return {name: cls.from_env(environ) for name, cls in RESOURCES.items()}


def check_settings(resources: Mapping[str, dg.ConfigurableResource]) -> None:
    """Parse every setting of `resources` (EnvVars resolved); ValueError names the bad one."""
    for resource in resources.values():
        if isinstance(resource, _Settings):
            try:
                resolved = resource.process_config_and_initialize()
            except dg.DagsterInvalidConfigError as exc:
                variables = ", ".join(type(resource).ENV.values())
                raise ValueError(f"a setting among {variables} is malformed: {exc}") from exc
            resolved.check()
