"""A minimal MQTT 3.1.1 client for the benchmarks' simulated devices and publishers.

Not a library: just enough of the protocol to be a device that costs almost nothing (one
``asyncio.Protocol`` per connection, packets built by hand, no task per device) so that ten
thousand of them fit in a child process or two, and a publisher whose packets are encoded before
the clock starts (one write, acks read back), so that neither the devices nor the publishers are
what a benchmark measures. It speaks: CONNECT (clean session, keepalive, a retained QoS 1 will),
CONNACK, SUBSCRIBE, PUBLISH at QoS 0/1 (a QoS 1 publish to it is acked), PUBACK, DISCONNECT.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def connect(client_id: str, *, keepalive_s: int, will: tuple[str, bytes] | None = None) -> bytes:
    """CONNECT, clean session; ``will`` (topic, payload) is retained at QoS 1."""
    flags = 0x02
    payload = _str(client_id)
    if will is not None:
        flags |= 0x04 | 0x08 | 0x20
        payload += _str(will[0]) + struct.pack("!H", len(will[1])) + will[1]
    body = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive_s) + payload
    return b"\x10" + _varint(len(body)) + body


def publish(topic: str, payload: bytes, *, pid: int = 0, retain: bool = False) -> bytes:
    """PUBLISH at QoS 1 with packet id ``pid`` (1..65535), or QoS 0 when ``pid`` is 0."""
    head = 0x30 | (0x02 if pid else 0) | (0x01 if retain else 0)
    body = _str(topic) + (struct.pack("!H", pid) if pid else b"") + payload
    return bytes([head]) + _varint(len(body)) + body


def subscribe(pid: int, filters: list[str], qos: int = 1) -> bytes:
    body = struct.pack("!H", pid) + b"".join(_str(f) + bytes([qos]) for f in filters)
    return b"\x82" + _varint(len(body)) + body


DISCONNECT = b"\xe0\x00"


class Connection(asyncio.Protocol):
    """One MQTT connection: answers QoS 1 publishes with PUBACK, counts PUBACKs it receives,
    and resolves :attr:`connacked` with the CONNACK's return code."""

    def __init__(
        self,
        on_puback: Callable[[], None] | None = None,
        on_publish: Callable[[], None] | None = None,
    ) -> None:
        self.transport: asyncio.Transport | None = None
        self.connacked: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self._buf = bytearray()
        self._pid = 0
        self.pubacks = 0
        self._on_puback = on_puback
        self._on_publish = on_publish

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.connacked.done():
            self.connacked.set_exception(ConnectionError("closed before CONNACK"))
        if not self.closed.done():
            self.closed.set_result(None)

    def next_pid(self) -> int:
        self._pid = self._pid % 65535 + 1
        return self._pid

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        while len(buf) >= 2:
            n, mult, i = 0, 1, 1
            while True:
                if i >= len(buf):
                    return
                b = buf[i]
                n += (b & 0x7F) * mult
                mult *= 128
                i += 1
                if not b & 0x80:
                    break
            if len(buf) < i + n:
                return
            kind, body = buf[0] >> 4, bytes(buf[i : i + n])
            qos = (buf[0] >> 1) & 0x03
            del buf[: i + n]
            if kind == 2 and not self.connacked.done():  # CONNACK
                self.connacked.set_result(body[1])
            elif kind == 3:  # PUBLISH to us: ack it at QoS 1
                if qos == 1:
                    (tlen,) = struct.unpack_from("!H", body)
                    self.write(b"\x40\x02" + body[2 + tlen : 4 + tlen])
                if self._on_publish is not None:
                    self._on_publish()
            elif kind == 4:  # PUBACK
                self.pubacks += 1
                if self._on_puback is not None:
                    self._on_puback()


async def open_connection(
    host: str,
    port: int,
    client_id: str,
    *,
    keepalive_s: int,
    will: tuple[str, bytes] | None = None,
    on_puback: Callable[[], None] | None = None,
    on_publish: Callable[[], None] | None = None,
    timeout_s: float = 30.0,
) -> Connection:
    """Connect, send CONNECT and wait for a successful CONNACK."""
    loop = asyncio.get_running_loop()
    _, conn = await asyncio.wait_for(
        loop.create_connection(lambda: Connection(on_puback, on_publish), host, port), timeout_s
    )
    conn.write(connect(client_id, keepalive_s=keepalive_s, will=will))
    rc = await asyncio.wait_for(conn.connacked, timeout_s)
    if rc != 0:
        raise ConnectionError(f"CONNACK refused {client_id}: return code {rc}")
    return conn
