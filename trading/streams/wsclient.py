"""A lean WebSocket client for the benchmark (RFC 6455, client side, no extensions).

Why not a library client: the benchmark must measure the server, not the client. One
``asyncio.Protocol`` per connection parses every frame that arrived in one ``data_received``
call in a tight loop and stamps them all with the time the bytes arrived, so client-side
parsing neither delays nor inflates the measured latency. No per-connection task, no
compression (the server must not spend a zlib context per connection either), pings are
answered with pongs so the server's keep-alive does not drop idle connections.

Used only by :mod:`bench.ws`; not a general-purpose client (no TLS, no
fragmented messages from the server — servers do not fragment messages this small).
"""
from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from collections.abc import Callable

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def _mask(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the repeated 4-byte ``key`` (client frames must be masked)."""
    if not payload:
        return payload
    n = len(payload)
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(n, "little")


def frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = os.urandom(4)
    return head + key + _mask(payload, key)


class WsClient(asyncio.Protocol):
    """One connection. ``on_message(payload: bytes, received_ms: float)`` gets each text or
    binary message; ``opened`` resolves after the 101 answer, ``closed`` when the TCP
    connection ends."""

    def __init__(self, host: str, path: str, on_message: Callable[[bytes, float], None] | None = None, origin: str | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.host, self.path, self.origin = host, path, origin
        self.on_message = on_message
        self.opened: asyncio.Future = loop.create_future()
        self.closed: asyncio.Future = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self._buf = b""
        self._open = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {self.path} HTTP/1.1", f"Host: {self.host}", "Upgrade: websocket", "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
        ]
        if self.origin:
            lines.append(f"Origin: {self.origin}")
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def data_received(self, data: bytes) -> None:
        now = time.time() * 1000.0
        buf = self._buf + data if self._buf else data
        if not self._open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._buf = buf
                return
            status = buf[: buf.find(b"\r\n")]
            if b" 101 " not in status + b" ":
                if not self.opened.done():
                    self.opened.set_exception(ConnectionError(status.decode(errors="replace")))
                self.transport.close()
                return
            self._open = True
            if not self.opened.done():
                self.opened.set_result(self)
            buf = buf[end + 4:]
        self._buf = self._parse(buf, now)

    def _parse(self, buf: bytes, now: float) -> bytes:
        i, end = 0, len(buf)
        on_message = self.on_message
        while end - i >= 2:
            b0, b1 = buf[i], buf[i + 1]
            n, pos = b1 & 0x7F, i + 2
            if n == 126:
                if end - pos < 2:
                    break
                n = int.from_bytes(buf[pos:pos + 2], "big")
                pos += 2
            elif n == 127:
                if end - pos < 8:
                    break
                n = int.from_bytes(buf[pos:pos + 8], "big")
                pos += 8
            key = None
            if b1 & 0x80:  # servers do not mask, but be tolerant
                key, pos = buf[pos:pos + 4], pos + 4
            if end - pos < n:
                break
            payload = buf[pos:pos + n]
            if key is not None:
                payload = _mask(payload, key)
            i = pos + n
            op = b0 & 0x0F
            if op in (OP_TEXT, OP_BINARY, OP_CONT):
                if on_message is not None:
                    on_message(payload, now)
            elif op == OP_PING:
                self.transport.write(frame(OP_PONG, payload))
            elif op == OP_CLOSE:
                self.transport.write(frame(OP_CLOSE, payload[:2]))
                self.transport.close()
                return b""
        return buf[i:] if i < end else b""

    def send_text(self, text: str) -> None:
        self.transport.write(frame(OP_TEXT, text.encode()))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            try:
                self.transport.write(frame(OP_CLOSE, struct.pack("!H", 1000)))
            finally:
                self.transport.close()

    def connection_lost(self, exc) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed before the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)


async def ws_connect(port: int, path: str, *, on_message=None, origin: str | None = None, timeout: float = 30.0) -> WsClient:
    loop = asyncio.get_running_loop()
    host = f"127.0.0.1:{port}"
    _, client = await asyncio.wait_for(loop.create_connection(lambda: WsClient(host, path, on_message, origin), "127.0.0.1", port), timeout)
    await asyncio.wait_for(asyncio.shield(client.opened), timeout)
    return client
