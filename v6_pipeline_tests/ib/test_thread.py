"""GatewayThread: the same server for synchronous callers, driven from another thread."""

from __future__ import annotations

import dataclasses
import json
import socket
from pathlib import Path

import pytest
from ib_async import IB

from v6_pipeline.ib.gateway import GatewayThread, Portfolio, PortfolioError
from v6_pipeline_tests.ib.support import SAMPLE, ib_rows, rows


def test_sync_client_gets_snapshot_live_updates_and_faults() -> None:
    with GatewayThread(SAMPLE) as gw:
        ib = IB()
        ib.connect(gw.host, gw.port, clientId=3, readonly=True, timeout=5)
        try:
            assert ib_rows(ib.run(ib.reqPositionsAsync())) == rows(SAMPLE)
            assert gw.client_ids == {3}
            assert gw.snapshots[-1].positions == len(SAMPLE.positions)
            seen: list[float] = []
            ib.positionEvent += lambda p: seen.append(p.position)

            moved = dataclasses.replace(SAMPLE.positions[1], position=13.25)
            gw.set_portfolio(Portfolio.of([SAMPLE.positions[0], moved, *SAMPLE.positions[2:]]))
            ib.run(ib.reqCurrentTimeAsync())  # answered after the push went out
            assert seen == [13.25]

            gw.set_faults(["drop-mid-positions"])
            with pytest.raises(ConnectionError):
                ib.run(ib.reqPositionsAsync())
        finally:
            ib.disconnect()
    gw.stop()  # idempotent


def test_start_fails_loudly_when_the_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()

        with pytest.raises(OSError, match="address already in use"):
            GatewayThread(SAMPLE, port=taken.getsockname()[1]).start()


def test_reload_reads_the_file_and_keeps_the_portfolio_when_it_is_bad(tmp_path: Path) -> None:
    path = tmp_path / "portfolio.yaml"
    path.write_text(
        "positions:\n  - {account: DU1, conid: 1, symbol: A, sec_type: STK, position: 1}\n"
    )
    with GatewayThread(SAMPLE, source=path) as gw:
        changes = gw.reload()

        assert [(c.account, c.conid, c.position) for c in changes] == [
            ("DU1", 1, 1.0),
            *[(p.account, p.conid, 0.0) for p in SAMPLE.positions if p.position != 0],
        ]
        path.write_text("positions: [")
        with pytest.raises(PortfolioError, match="not valid YAML"):
            gw.reload()
        assert [p.conid for p in gw.portfolio.positions] == [1]


@pytest.mark.parametrize(
    ("field", "value"),
    [("conid", 2**63), ("conid", -(2**63) - 1), ("position", 10**400), ("avg_cost", 10**400)],
    ids=["conid-over-int64", "conid-under-int64", "position-over-float", "avg-cost-over-float"],
)
def test_reload_refuses_numbers_the_wire_cannot_carry(
    tmp_path: Path, field: str, value: int
) -> None:
    path = tmp_path / "portfolio.json"
    entry = {"account": "DU1", "conid": 1, "symbol": "A", "sec_type": "STK", "position": 1}
    path.write_text(json.dumps({"positions": [{**entry, field: value}]}))
    with GatewayThread(SAMPLE, source=path) as gw:
        with pytest.raises(PortfolioError, match=rf"positions\[0\]\.{field}: must"):
            gw.reload()
        assert gw.portfolio == SAMPLE
