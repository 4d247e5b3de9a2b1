"""``persys dns``: the authoritative DNS server of the cluster zone, over UDP and TCP.

Owns the transports: the UDP endpoint, the TCP listener and, standalone, an HTTP listener for
``/metrics`` and ``/healthz``. It is a supervised component: the listeners are its main service
and the record cache's watch runs beside it (task ``dns/watch``). UDP answers that exceed 512
bytes (or the client's EDNS buffer size) are truncated with the TC bit so that the client
retries over TCP, which carries any size.
Answers themselves come from ``persys.dns.answer``.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Any, cast

import dns.exception
import dns.flags
import dns.message
import dns.rcode

from persys.dns.answer import Responder
from persys.dns.cache import RecordCache
from persys.observability.logging import get_logger
from persys.runtime.supervisor import Component, Service, StatusListener, Supervisor
from persys.store.etcd import Etcd

log = get_logger("dns")

TCP_IDLE_TIMEOUT = 10.0
UDP_MIN_SIZE = 512


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` → (host, port); the default host is 127.0.0.1."""
    host, _, port = listen.rpartition(":")
    return (host.strip("[]") or "127.0.0.1"), int(port)


def _formerr(wire: bytes) -> bytes | None:
    """A FORMERR reply to an unparsable query, or None when not even its header is readable."""
    if len(wire) < 12:
        return None
    (query_id,) = struct.unpack("!H", wire[:2])
    response = dns.message.Message(id=query_id)
    response.flags = dns.flags.QR
    response.set_rcode(dns.rcode.FORMERR)
    return response.to_wire()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        reply = self.server.handle(data, udp=True)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


class DnsServer(Component):
    """Answers queries for ``zone`` on ``host:port`` (UDP and TCP) from the SkyDNS records in etcd."""

    def __init__(self, etcd: Etcd, zone: str = "persys.local", host: str = "127.0.0.1", port: int = 5353,
                 *, metrics_listen: tuple[str, int] | None = None, name: str = "dns") -> None:
        super().__init__(name)
        self.etcd = etcd
        self.zone = zone.rstrip(".").lower()
        self.host = host
        self.port = port
        self.cache = RecordCache(etcd, self.zone, name=f"{name}/watch")
        self.responder = Responder(self.cache, self.zone)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        # standalone `persys dns` has no other HTTP server: /metrics and /healthz get their own listener
        self.metrics = StatusListener(*metrics_listen, component=self) if metrics_listen is not None else None

    def handle(self, wire: bytes, *, udp: bool) -> bytes | None:
        """The wire reply to one wire query (None: drop it)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return _formerr(wire)
        if query.flags & dns.flags.QR:
            return None  # a response, not a query: never answer it (reflection loops)
        try:
            response = self.responder.respond(query)
        except Exception:
            log.exception("dns.answer_failed", question=str(query.question))
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.SERVFAIL)
        if not udp:
            return response.to_wire(max_size=65535)
        limit = max(UDP_MIN_SIZE, query.payload) if query.edns >= 0 else UDP_MIN_SIZE
        return response.to_wire(max_size=limit, prefer_truncation=True)

    def background(self) -> list[Service]:
        return [self.cache]

    async def open(self) -> None:
        """Bind UDP, TCP and the status listener."""
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=(self.host, self.port))
        self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port)
        if self.metrics is not None:
            await self.metrics.start()

    async def start(self, supervisor: Supervisor | None = None, ready_timeout: float | None = 10.0) -> None:
        """Listen and follow the records; wait (up to ``ready_timeout``) for their first list."""
        await super().start(supervisor)
        if ready_timeout:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.cache.ready.wait(), ready_timeout)
        log.info("dns.listening", zone=self.zone, address=f"{self.host}:{self.port}",
                 ready=self.cache.ready.is_set(), records=len(self.cache))

    async def cleanup(self) -> None:
        """Stop listening and end open TCP connections."""
        if self.metrics is not None:
            await self.metrics.stop()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()
            self._tcp = None

    async def close(self) -> None:
        """``stop()``, by its older name."""
        await self.stop()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Length-prefixed queries on one connection, until EOF or idle timeout."""
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                try:
                    async with asyncio.timeout(TCP_IDLE_TIMEOUT):  # not wait_for: it can swallow a cancel
                        size = struct.unpack("!H", await reader.readexactly(2))[0]
                    async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                        wire = await reader.readexactly(size)
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                reply = self.handle(wire, udp=False)
                if reply is None:
                    return
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
