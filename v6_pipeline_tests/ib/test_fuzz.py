"""Random bytes and random frames at the gateway (loopback only, bounded count and time):
a well-behaved client connected throughout keeps being served, every connection
the fuzzer opened is let go, and nothing but well-framed ASCII comes back."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ib_async import IB

from v6_pipeline.ib import protocol
from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline_tests.ib.support import SAMPLE, client_hello, ib_rows, rows, start_api

READ_WINDOW_S = 0.02

# Message ids clients send, plus some nobody sends.
msg_ids = st.one_of(st.integers(0, 110), st.sampled_from([-1, 2**31, 10**12]))
fields = st.one_of(
    st.integers(-(2**40), 2**40).map(str),
    st.text(st.characters(codec="ascii", exclude_characters="\0"), max_size=12),
    st.sampled_from(["", "DU111", "1.5", "nan", "-0", "\\", "\x7f"]),
)
frames = st.builds(
    lambda msg_id, rest: protocol.frame(msg_id, *rest), msg_ids, st.lists(fields, max_size=12)
)
raw_frames = st.binary(max_size=64).map(protocol.prefix)  # unterminated, non-ASCII, empty
openings = st.one_of(
    st.binary(max_size=200),  # anything at all
    st.builds(
        lambda low, high, client_id: client_hello(low, high) + start_api(client_id),
        st.sampled_from([100, 157]) | st.integers(0, 300),  # mostly real version ranges
        st.sampled_from([157, 178, 226]) | st.integers(0, 300),
        st.integers(1000, 2000),
    ),
)
tails = st.one_of(
    st.lists(st.one_of(frames, raw_frames), max_size=8).map(b"".join),
    st.binary(max_size=100),
    st.just(struct.pack(">I", 2**32 - 1)),  # an absurd length, then silence
)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[GatewayThread, IB]]:
    with GatewayThread(SAMPLE, handshake_timeout=0.5) as gw:
        ib = IB()
        ib.connect(gw.host, gw.port, clientId=1, readonly=True, timeout=5)
        yield gw, ib
        ib.disconnect()


def exchange(port: int, data: bytes, half_close: bool) -> bytes:
    """Send `data`; return what came back within a short window."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=READ_WINDOW_S) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionError):
            pass  # the server may close on us, or say nothing
    return received


def assert_well_framed_ascii(received: bytes) -> None:
    while len(received) >= 4:
        (length,) = struct.unpack(">I", received[:4])
        assert length <= protocol.MAX_FRAME_LEN
        payload, received = received[4 : 4 + length], received[4 + length :]
        assert payload.isascii()
        assert len(payload) < length or payload.endswith(b"\0")  # the last may be cut short


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same cases every run: a failure is reproducible
)
@given(opening=openings, tail=tails, half_close=st.booleans())
def test_random_input_never_hurts_a_well_behaved_client(
    served: tuple[GatewayThread, IB], opening: bytes, tail: bytes, half_close: bool
) -> None:
    gw, ib = served

    assert_well_framed_ascii(exchange(gw.port, opening + tail, half_close))

    assert ib.run(ib.reqCurrentTimeAsync()) is not None


def test_after_the_fuzz_the_snapshot_is_whole_and_connections_drain(
    served: tuple[GatewayThread, IB],
) -> None:
    gw, ib = served
    assert ib_rows(ib.run(ib.reqPositionsAsync())) == rows(SAMPLE)
    for _ in range(200):  # idle fuzz connections go after the handshake timeout
        if gw.connections == 1:
            break
        ib.sleep(0.01)
    assert gw.connections == 1
    assert gw.client_ids == {1}
    assert gw.portfolio == SAMPLE
    # the fuzz got past startApi and had requests served
    assert any(r.client_id is not None and r.client_id >= 1000 for r in gw.requests)
