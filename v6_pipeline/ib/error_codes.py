"""The codes of IB's error frames that the client side (snapshot, stream, doctor) and
the emulator (`gateway/`) both speak of."""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Codes of error frames (IB's "Message Codes" of the TWS API documentation)."""

    SERVER_ERROR_READING = 320
    """server error when reading an API client request"""
    SERVER_ERROR_VALIDATING = 321
    """server error when validating an API client request (read-only mode refuses orders)"""
    SERVER_ERROR_PROCESSING = 322
    """server error when processing an API client request (ib_async ends the request)"""
    CLIENT_ID_IN_USE = 326
    """client id already in use: sent in answer to startApi, then the gateway closes"""
    NOT_CONNECTED = 504
    """a request sent while the gateway has no API connection"""
    CONNECTIVITY_LOST = 1100
    """connectivity between IB and TWS has been lost"""
    CONNECTIVITY_RESTORED_DATA_LOST = 1101
    """restored, but market data subscriptions were lost: resubscribe"""
    CONNECTIVITY_RESTORED_DATA_MAINTAINED = 1102
    """restored, and data subscriptions were kept"""
    SOCKET_PORT_RESET = 1300
    """the TWS socket port was reset and this connection is being dropped"""
    CONNECTIVITY_BROKEN = 2110
    """connectivity between TWS and the server is broken; restored automatically"""
    COMPETING_LIVE_SESSION = 10197
    """no market data during a competing live session"""
