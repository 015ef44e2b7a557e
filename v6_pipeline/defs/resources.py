"""Resources: IB, the lake, and the reconciliation settings, all read from `V6_*` settings.

Fields that are floats in spirit are strings here: Dagster's `EnvVar` has a string and
an int form only. They are parsed, with an error naming the setting, when used.
"""

from __future__ import annotations

import os
from datetime import timedelta

import dagster as dg

from v6_pipeline.ib.snapshot import IBSnapshot, take_snapshot
from v6_pipeline.lake.lake import Lake

DEFAULT_CLIENT_ID = 606  # far from the 0/1/2 trading clients usually take


def setting(name: str, default: str) -> str:
    """`EnvVar(name)` when the operator set it (the UI then shows where the value came
    from), else the documented default."""
    return dg.EnvVar(name) if os.environ.get(name, "").strip() else default


def int_setting(name: str, default: int) -> int:
    return dg.EnvVar.int(name) if os.environ.get(name, "").strip() else default


def _number(name: str, raw: str, *, minimum: float = 0.0) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if not value >= minimum:
        raise ValueError(f"{name}={raw!r} must be >= {minimum:g}")
    return value


class IBGatewayResource(dg.ConfigurableResource):
    """IB Gateway or TWS over its TCP API, read-only: one complete position snapshot."""

    host: str = "127.0.0.1"
    port: int = 4002
    client_id: int = DEFAULT_CLIENT_ID
    timeout_s: str = "30"

    def snapshot(self) -> IBSnapshot:
        return take_snapshot(
            self.host,
            self.port,
            self.client_id,
            timeout_s=_number("V6_IB_TIMEOUT_S", self.timeout_s, minimum=0.1),
        )


class LakeResource(dg.ConfigurableResource):
    """The Delta tables under `lake_dir`."""

    lake_dir: str = "data/lake"
    default_account: str = ""

    def lake(self) -> Lake:
        return Lake(self.lake_dir, default_account=self.default_account or None)


class ReconciliationSettings(dg.ConfigurableResource):
    """What counts as a discrepancy: scope, tolerance, staleness."""

    sec_types: str = "OPT"
    abs_tol: str = "0.001"
    stale_after_s: str = ""

    def scope(self) -> tuple[str, ...] | None:
        """The sec types in scope; `None` means all (`*`)."""
        types = tuple(t.strip().upper() for t in self.sec_types.split(",") if t.strip())
        if not types:
            raise ValueError("V6_SEC_TYPES is empty; write e.g. OPT or OPT,STK, or * for all")
        return None if "*" in types else types

    def tolerance(self) -> float:
        return _number("V6_ABS_TOL", self.abs_tol)

    def stale_after(self) -> timedelta | None:
        if not self.stale_after_s.strip():
            return None
        return timedelta(seconds=_number("V6_STALE_AFTER_S", self.stale_after_s))

    def describe(self) -> str:
        scope = self.scope()
        stale = self.stale_after()
        return (
            f"sec types {'all' if scope is None else ','.join(scope)}, "
            f"tolerance {self.tolerance():g}, "
            f"stale after {'off' if stale is None else f'{stale.total_seconds():g} s'}"
        )


def resources_from_env() -> dict[str, dg.ConfigurableResource]:
    """The resources as `V6_*` settings configure them (README, "Settings")."""
    return {
        "ib": IBGatewayResource(
            host=setting("V6_IB_HOST", "127.0.0.1"),
            port=int_setting("V6_IB_PORT", 4002),
            client_id=int_setting("V6_IB_CLIENT_ID", DEFAULT_CLIENT_ID),
            timeout_s=setting("V6_IB_TIMEOUT_S", "30"),
        ),
        "lake": LakeResource(
            lake_dir=setting("V6_LAKE_DIR", "data/lake"),
            default_account=setting("V6_DEFAULT_ACCOUNT", ""),
        ),
        "settings": ReconciliationSettings(
            sec_types=setting("V6_SEC_TYPES", "OPT"),
            abs_tol=setting("V6_ABS_TOL", "0.001"),
            stale_after_s=setting("V6_STALE_AFTER_S", ""),
        ),
    }
