"""Why an IB snapshot could not be taken, one exception type per cause.

Every message is a sentence the person on call can act on. `transient` says
whether trying again within the same run can help.
"""

from __future__ import annotations


class IBSnapshotError(Exception):
    """No complete snapshot: the run must fail, and no discrepancy may be written."""

    transient = True


class GatewayUnreachableError(IBSnapshotError):
    def __init__(self, host: str, port: int, cause: BaseException | str) -> None:
        super().__init__(
            f"Cannot reach IB Gateway/TWS at {host}:{port} ({cause}). Start IB Gateway or TWS "
            "with the API enabled (Configure > Settings > API: 'Enable ActiveX and Socket "
            "Clients'), or point V6_IB_HOST / V6_IB_PORT at it (paper Gateway 4002, live "
            "Gateway 4001, paper TWS 7497, live TWS 7496)."
        )


class ClientIdInUseError(IBSnapshotError):
    # Another API client holds the id until it disconnects: retrying now won't help.
    transient = False

    def __init__(self, client_id: int, host: str, port: int) -> None:
        super().__init__(
            f"IB Gateway at {host}:{port} refused client id {client_id}: it is already in use "
            "by another API connection (error 326). Set V6_IB_CLIENT_ID to an id no trading "
            "client uses."
        )


class SnapshotTimeoutError(IBSnapshotError):
    def __init__(self, timeout_s: float, received: int, stage: str) -> None:
        super().__init__(
            f"IB did not finish {stage} within {timeout_s:g} s ({received} position(s) had "
            "arrived, but no positionEnd): the snapshot is incomplete and was discarded. "
            "Check the gateway's connection to IB, or raise V6_IB_TIMEOUT_S for a very large "
            "account."
        )


class GatewayDisconnectedError(IBSnapshotError):
    def __init__(self, host: str, port: int, received: int, reason: str = "") -> None:
        why = f": {reason}" if reason else ""
        super().__init__(
            f"IB Gateway at {host}:{port} closed the connection mid-snapshot after {received} "
            f"position(s){why}. The partial snapshot was discarded. Check the gateway's log "
            "(a restart, a daily reset or a competing login)."
        )


class MalformedPositionError(IBSnapshotError):
    def __init__(self, count: int, example: str) -> None:
        super().__init__(
            f"IB sent {count} position message(s) the client could not decode (e.g. {example}); "
            "a snapshot missing them could raise false alarms, so it was discarded. Check the "
            "gateway version and the ib_async version against each other."
        )


class ConnectivityLostError(IBSnapshotError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(
            f"IB Gateway reports its connection to IB is down (error {code}: {message}); "
            "positions it reports now may be stale. Check the gateway's login and network; "
            "the next run retries."
        )
