"""Why an IB snapshot could not be taken, one exception type per cause.

Every message is a sentence the person on call can act on. `transient` says
whether trying again within the same run can help.
"""

from __future__ import annotations

from v6_pipeline.ib.error_codes import ErrorCode

_API_PORTS = "paper Gateway 4002, live Gateway 4001, paper TWS 7497, live TWS 7496"
_ENABLE_API = "Configure > Settings > API: 'Enable ActiveX and Socket Clients'"


class IBSnapshotError(Exception):
    """No complete snapshot: the run must fail, and no discrepancy may be written."""

    transient = True


class GatewayUnreachableError(IBSnapshotError):
    def __init__(self, host: str, port: int, cause: BaseException | str) -> None:
        super().__init__(
            f"Cannot reach IB Gateway/TWS at {host}:{port} ({cause}). Start IB Gateway or TWS "
            f"with the API enabled ({_ENABLE_API}), or point V6_IB_HOST / V6_IB_PORT at it "
            f"({_API_PORTS})."
        )


class HandshakeTimeoutError(IBSnapshotError):
    """The port took the TCP connection but nothing answered the API handshake."""

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        super().__init__(
            f"Connected to {host}:{port}, but no API handshake answer within {timeout_s:.3g} s "
            "(the attempt's share of V6_IB_TIMEOUT_S). "
            f"Is the API enabled ({_ENABLE_API}), is V6_IB_PORT the API port and not another "
            f"service's such as web or FIX ({_API_PORTS}), and is no 'accept incoming "
            "connection?' dialog waiting in TWS/Gateway (Trusted IPs skip it)?"
        )


class GatewayAddressError(IBSnapshotError):
    """V6_IB_HOST / V6_IB_PORT cannot be a gateway's address: retrying won't help."""

    transient = False

    @classmethod
    def bad_port(cls, port: int) -> GatewayAddressError:
        return cls(
            f"V6_IB_PORT={port} is not a TCP port (1..65535). Set it to the API port of IB "
            f"Gateway/TWS ({_API_PORTS})."
        )

    @classmethod
    def empty_host(cls) -> GatewayAddressError:
        return cls(
            "V6_IB_HOST is empty. Set it to the name or IP address of the machine running IB "
            "Gateway/TWS (127.0.0.1 when it runs here)."
        )

    @classmethod
    def unresolvable(cls, host: str, cause: OSError) -> GatewayAddressError:
        return cls(
            f"V6_IB_HOST={host!r} does not resolve to an address ({cause.strerror}). Set it to "
            "the name or IP address of the machine running IB Gateway/TWS (127.0.0.1 when it "
            "runs here)."
        )


class ClientIdInUseError(IBSnapshotError):
    # Another API client holds the id until it disconnects: retrying now won't help.
    transient = False

    def __init__(
        self, client_id: int, host: str, port: int, setting: str = "V6_IB_CLIENT_ID"
    ) -> None:
        # `setting`: the variable that chose the id (the stream has its own), so the
        # sentence names the one to change.
        super().__init__(
            f"IB Gateway at {host}:{port} refused client id {client_id}: it is already in use "
            f"by another API connection (error {ErrorCode.CLIENT_ID_IN_USE}). Set "
            f"{setting} to an id no other API client uses."
        )
        self.client_id = client_id
        self.setting = setting


class SnapshotTimeoutError(IBSnapshotError):
    def __init__(self, timeout_s: float, received: int, stage: str) -> None:
        super().__init__(
            f"IB did not finish {stage} within {timeout_s:g} s ({received} position(s) had "
            "arrived, but no positionEnd): the snapshot is incomplete and was discarded. "
            "Check the gateway's connection to IB, or raise V6_IB_TIMEOUT_S for a very large "
            "account."
        )


class GatewayDisconnectedError(IBSnapshotError):
    def __init__(self, host: str, port: int, stage: str, received: int, reason: str = "") -> None:
        why = f": {reason}" if reason else ""
        super().__init__(
            f"IB Gateway at {host}:{port} closed the connection during {stage}, after "
            f"{received} position(s){why}. The partial snapshot was discarded. Check the "
            "gateway's log (a restart, a daily reset or a competing login)."
        )


class MalformedPositionError(IBSnapshotError):
    def __init__(self, count: int, example: str) -> None:
        super().__init__(
            f"IB sent {count} position message(s) the client could not decode (e.g. {example}); "
            "a snapshot missing them could raise false alarms, so it was discarded. Check the "
            "gateway version and the ib_async version against each other."
        )


class NonFinitePositionError(IBSnapshotError):
    def __init__(self, count: int, account: str, conid: int, quantity: float) -> None:
        super().__init__(
            f"IB sent {count} position(s) whose quantity is not a finite number (e.g. account "
            f"{account}, conid {conid}: {quantity}); they cannot be judged, so the snapshot was "
            "discarded and nothing was stored. Check the gateway's log and version; the next "
            "attempt asks again."
        )


class MalformedContractError(IBSnapshotError):
    """A position whose contract cannot be stored as IB sent it (a conid beyond int64)."""

    # The gateway describes a contract the same way on every ask: retrying within the run
    # would only delay the failure.
    transient = False

    def __init__(
        self, count: int, account: str, contract: str, field: str, value: object, why: str
    ) -> None:
        super().__init__(
            f"IB sent {count} position(s) whose {field} cannot be used (e.g. account {account}, "
            f"{contract}: {field} {value}, {why}); a snapshot without them could raise false "
            "alarms, so it was discarded and nothing was stored. Check the gateway's log and "
            "version (a gateway or proxy that corrupts messages) and look the contract up in "
            "TWS; the next run asks again."
        )
        self.account = account
        self.field = field


class ConnectivityLostError(IBSnapshotError):
    """A connectivity code that interrupts an answer (`connectivity.py`: those that fail)."""

    def __init__(self, code: int, message: str, why: str = "") -> None:
        super().__init__(
            f"IB Gateway interrupted the positions answer with error {code} ({message})"
            f"{': ' + why if why else ''}; the answer was discarded and the snapshot retried. "
            "If it persists, check the gateway's login and network (a nightly reset ends by "
            "itself)."
        )
