"""The gateway's items: reachable, the API answering, its server version, the client id
free, Read-Only API (a reminder: never probed), the managed accounts, one snapshot.

The probe is the bare API handshake and startApi (what every run does first); the
snapshot is the run's own `take_snapshot`, one attempt, with `reqPositions` only.
Nothing here can act on a writable gateway: no order, no account or execution request.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC

from ib_async import IB, Client

from v6_pipeline.doctor.report import Line, fail, note, ok, skip
from v6_pipeline.ib.error_codes import ErrorCode
from v6_pipeline.ib.errors import IBSnapshotError
from v6_pipeline.ib.snapshot import IBSnapshot, take_snapshot

# The API socket ports IB's products use by default, as IB's settings page names them.
API_PORTS: dict[int, str] = {
    4002: "IB Gateway paper",
    4001: "IB Gateway live",
    7497: "TWS paper",
    7496: "TWS live",
}
API_SETTINGS = "Configure → Settings → API → Settings"
ENABLE_API = f"{API_SETTINGS}: tick 'Enable ActiveX and Socket Clients'"
TRUSTED_IPS = f"{API_SETTINGS} → Trusted IPs"
READ_ONLY = f"{API_SETTINGS}: tick 'Read-Only API'"


@dataclass
class Probe:
    """What the handshake found; each field None/empty where it was not reached."""

    local_address: str | None = None  # this machine's address as the gateway sees it
    tcp_error: Line | None = None
    api_error: Line | None = None
    server_version: int | None = None
    client_id_in_use: bool = False
    accounts: tuple[str, ...] = field(default_factory=tuple)

    @property
    def api_ok(self) -> bool:
        return self.tcp_error is None and self.api_error is None


def probe(host: str, port: int, client_id: int, *, timeout_s: float) -> Probe:
    """Connect, handshake and startApi with `client_id`, then hang up."""
    found = Probe()
    found.tcp_error = _tcp(host, port, timeout_s, found)
    if found.tcp_error is None:
        asyncio.run(_handshake(host, port, client_id, timeout_s, found))
    return found


def _tcp(host: str, port: int, timeout_s: float, found: Probe) -> Line | None:
    where = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            found.local_address = str(sock.getsockname()[0])
        return None
    except socket.gaierror as exc:
        return fail(
            "gateway reachable",
            f"V6_IB_HOST={host!r} does not resolve ({exc.strerror}): set V6_IB_HOST to the "
            "name or address of the machine running IB Gateway/TWS (127.0.0.1 when it runs "
            "here)",
        )
    except TimeoutError:
        return fail(
            "gateway reachable",
            f"no answer from {where} within {timeout_s:g} s (a firewall dropping the "
            "connection, or the wrong V6_IB_HOST): open the port from this machine, or set "
            "V6_IB_HOST to the gateway's address",
        )
    except OSError as exc:
        return fail(
            "gateway reachable",
            f"nothing accepts connections at {where} ({exc.strerror})"
            f": {_where_to_point(host, port)}",
        )


def _where_to_point(host: str, port: int) -> str:
    """The fix for a closed port: another of IB's API ports that listens, or the list."""
    listening = [p for p in API_PORTS if p != port and _listens(host, p)]
    if listening:
        other = listening[0]
        return (
            f"{API_PORTS[other]}'s port {other} is open on {host}: set V6_IB_PORT={other} "
            f"(the Socket port shown under {API_SETTINGS})"
        )
    ports = ", ".join(f"{name} {p}" for p, name in API_PORTS.items())
    return (
        f"start IB Gateway or TWS with the API enabled ({ENABLE_API}), and set V6_IB_PORT "
        f"to its Socket port ({ports})"
    )


def _listens(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


async def _handshake(host: str, port: int, client_id: int, timeout_s: float, found: Probe) -> None:
    ib = IB()
    loop = asyncio.get_running_loop()
    refused: asyncio.Future[None] = loop.create_future()
    closed: asyncio.Future[None] = loop.create_future()

    def on_error(req_id: int, code: int, message: str, contract: object) -> None:
        if code == ErrorCode.CLIENT_ID_IN_USE and not refused.done():
            found.server_version = ib.client.serverVersion() or found.server_version
            refused.set_result(None)

    def on_disconnected() -> None:
        if not closed.done():
            closed.set_result(None)

    def on_api_error(message: str) -> None:
        on_disconnected()

    ib.errorEvent += on_error
    ib.disconnectedEvent += on_disconnected
    ib.client.apiError += on_api_error
    # The socket's own event: ib_async's client says nothing of a peer that hangs up
    # before the handshake is answered.
    ib.client.conn.disconnected += on_api_error
    connect = asyncio.ensure_future(ib.client.connectAsync(host, port, client_id, timeout=None))
    try:
        done, _ = await asyncio.wait(
            {connect, refused, closed}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        found.server_version = ib.client.serverVersion() or found.server_version
        if refused in done:
            found.client_id_in_use = True
        elif connect in done and connect.exception() is None:
            found.accounts = tuple(ib.client.getAccounts())
        elif found.server_version:  # handshake answered, startApi not
            found.api_error = fail(
                "API answering",
                f"the gateway answered the handshake (server version {found.server_version}) "
                f"but not startApi within {timeout_s:g} s: check the gateway's log in, and "
                "that no dialog is waiting in IB Gateway/TWS",
            )
        elif closed in done or connect in done:
            found.api_error = fail(
                "API answering",
                f"{host}:{port} closed the connection without an API handshake: this machine "
                f"({found.local_address}) is probably not a trusted IP — add it under "
                f"{TRUSTED_IPS} (and check {ENABLE_API})",
            )
        else:
            found.api_error = fail(
                "API answering",
                f"{host}:{port} took the connection but sent no API handshake within "
                f"{timeout_s:g} s: enable the API ({ENABLE_API}), check that V6_IB_PORT is "
                "the API Socket port and not another service's, and that no 'accept incoming "
                f"connection?' dialog is waiting in IB Gateway/TWS (add "
                f"{found.local_address} under {TRUSTED_IPS} to skip it)",
            )
    finally:
        connect.cancel()
        if connect.done() and not connect.cancelled():
            connect.exception()  # seen: asyncio would log it as never retrieved
        if ib.client.isReady():
            ib.disconnect()
        else:
            ib.client.disconnect()


def probe_lines(found: Probe, *, host: str, port: int, client_id: int) -> list[Line]:
    """The reachable, API, server version and client id lines, in order."""
    where = f"{host}:{port}"
    if found.tcp_error is not None:
        why = "the gateway is not reachable"
        return [
            found.tcp_error,
            *(skip(i, why) for i in ("API answering", "server version", "client id free")),
        ]
    lines = [ok("gateway reachable", f"{where} accepts connections (from {found.local_address})")]
    if found.api_error is not None:
        lines.append(found.api_error)
        lines += [skip(i, "the API did not answer") for i in ("server version", "client id free")]
        return lines
    lines.append(ok("API answering", f"{where} answered the API handshake"))
    lines.append(
        ok(
            "server version",
            f"{found.server_version} (ib_async speaks {Client.MinClientVersion}"
            f"–{Client.MaxClientVersion})",
        )
        if found.server_version
        else fail("server version", "the gateway announced none: check its version and log")
    )
    if found.client_id_in_use:
        lines.append(
            fail(
                "client id free",
                f"client id {client_id} is in use by another API connection (error "
                f"{ErrorCode.CLIENT_ID_IN_USE}): set V6_IB_CLIENT_ID to an id no other API "
                "client uses (trading tools often take 0, 1, 2; v6 stream takes "
                "V6_STREAM_CLIENT_ID), or close the other connection (a reconciliation "
                "run holds it for seconds after each window closes: if one was in flight, "
                "run v6 doctor again)",
            )
        )
    else:
        lines.append(ok("client id free", f"client id {client_id} was accepted"))
    return lines


def read_only_reminder() -> Line:
    return note(
        "Read-Only API",
        f"not probed (a probe would act on a writable gateway): make sure it is on — {READ_ONLY}",
    )


def accounts_line(
    found: Probe, delta_accounts: Sequence[str] | None, judged: Sequence[str] | None, why: str
) -> Line:
    """The managed accounts against `V6_ACCOUNTS` (`judged`) and the accounts Delta holds
    open positions in (`delta_accounts`; None: the lake could not tell, `why`)."""
    item = "managed accounts"
    if not found.api_ok or found.client_id_in_use:
        return skip(item, "the API did not answer")
    managed = set(found.accounts)
    names = ", ".join(found.accounts) or "none"
    unknown = [a for a in judged or () if a not in managed]
    if unknown:
        return fail(
            item,
            f"V6_ACCOUNTS names {', '.join(unknown)}, which this login does not manage (it "
            f"manages {names}): set V6_ACCOUNTS to accounts among {names}, or log in to the "
            "gateway as a user who manages them",
        )
    if delta_accounts is None:
        return fail(item, f"the gateway manages {names}; Delta's accounts unknown ({why})")
    scope = set(judged) if judged else managed
    strays = sorted(a for a in delta_accounts if a not in managed)
    if strays:
        return fail(
            item,
            f"Delta holds open positions in {', '.join(strays)}, which this login does not "
            f"manage (it manages {names}): log in to the gateway as the user who manages "
            f"{', '.join(strays)} (IB Gateway: the login screen; TWS: File → Log off), or fix "
            "the account of those rows in position_updates",
        )
    held = sorted(a for a in delta_accounts if a in scope)
    return ok(
        item,
        f"the gateway manages {names}; Delta holds open positions in "
        f"{', '.join(held) or 'none of them'}",
    )


def snapshot_line(host: str, port: int, client_id: int, *, timeout_s: float) -> Line:
    item = "snapshot"
    try:
        snap: IBSnapshot = take_snapshot(host, port, client_id, timeout_s=timeout_s, max_attempts=1)
    except IBSnapshotError as exc:
        return fail(item, f"{exc} (v6 doctor allows {timeout_s:g} s, one attempt)")
    at = snap.taken_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return ok(
        item,
        f"{snap.positions.height} position(s) in {len(snap.accounts)} account(s) at {at} "
        f"({snap.duration_s:.2f} s)",
    )
