"""The one door to etcd: an aetcd client with endpoint fail-over and wrapped errors.

Every call has a deadline and fails fast with ``StoreUnavailable`` while etcd is down;
gRPC reconnects by itself (with a short back-off) so calls work again when etcd is back,
without a restart. aetcd errors never leave this module unwrapped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aetcd
import aetcd.client
import aetcd.exceptions
import aetcd.rpc
import aetcd.utils
import grpc

from persys.errors import Gone, StoreUnavailable

T = TypeVar("T")
MAX_TXN_OPS = 128  # etcd's default --max-txn-ops: the most operations one transaction may hold

_CHANNEL_OPTIONS = {
    # gRPC's default reconnect back-off grows to 2 minutes; etcd coming back must be noticed fast.
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
    "grpc.keepalive_time_ms": 10000,
    "grpc.keepalive_timeout_ms": 5000,
    "grpc.max_receive_message_length": 256 * 1024 * 1024,
}


@dataclass(frozen=True)
class KV:
    """One key as read from etcd."""

    key: str
    value: bytes
    mod_revision: int
    create_revision: int
    lease: int


@dataclass(frozen=True)
class RawEvent:
    """One change under a watched prefix; ``value`` of a DELETE is the value before deletion."""

    type: str  # PUT | DELETE
    key: str
    value: bytes
    revision: int
    version: int  # 1 for the PUT that created the key


@dataclass(frozen=True)
class Compare:
    """A transaction guard: ``target`` of ``key`` must equal ``value`` (mod/create revision or value)."""

    key: str
    target: str  # "mod" | "create" | "value"
    value: int | bytes


@dataclass(frozen=True)
class EtcdTLS:
    """TLS to etcd: the CA that signed its serving certificates, and this client's certificate and key
    (etcd's ``--client-cert-auth`` asks for one). Without ``ca`` the system's roots are trusted."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def credentials(self) -> Any:
        """gRPC channel credentials; the files are read now, so a missing one is named at start."""
        if (self.cert is None) != (self.key is None):
            raise ValueError("an etcd client certificate needs its key, and a key its certificate")

        def read(path: Path | None, what: str) -> bytes | None:
            if path is None:
                return None
            try:
                return Path(path).read_bytes()
            except OSError as e:
                raise ValueError(f"etcd {what} {path}: {e.strerror}") from e

        return grpc.ssl_channel_credentials(read(self.ca, "CA"), read(self.key, "key"), read(self.cert, "certificate"))


class _TLSClient(aetcd.Client):  # type: ignore[misc]  # aetcd has no type hints
    """aetcd's client over a TLS channel: aetcd itself only opens insecure ones.

    ``connect`` is aetcd's (``aetcd.client.Client.connect``) with ``secure_channel`` for
    ``insecure_channel``; user/password authentication is not used by Persys and left out.
    """

    def __init__(self, credentials: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._credentials = credentials

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        if self._is_connecting:  # type: ignore[has-type]
            await asyncio.wait_for(self._connected.wait(), self._connect_wait_timeout)
            return
        try:
            self._is_connecting = True
            self.channel = aetcd.rpc.secure_channel(f"{self._host}:{self._port}", self._credentials,
                                                    options=self._options.items())
            self.kvstub = aetcd.rpc.KVStub(self.channel)
            self.clusterstub = aetcd.rpc.ClusterStub(self.channel)
            self.leasestub = aetcd.rpc.LeaseStub(self.channel)
            self.maintenancestub = aetcd.rpc.MaintenanceStub(self.channel)
            self._watcher = aetcd.client.watcher.Watcher(aetcd.rpc.WatchStub(self.channel), timeout=self._timeout,
                                                         metadata=self.metadata)
            self._connected.set()
        finally:
            self._is_connecting = False


def parse_endpoints(spec: str | Sequence[str]) -> list[tuple[str, int]]:
    """``http://127.0.0.1:2379,127.0.0.2:2379`` → [(host, port), …]."""
    items = _items(spec)
    out = []
    for item in items:
        item = item.strip().removeprefix("http://").removeprefix("https://").rstrip("/")
        if not item:
            continue
        host, _, port = item.rpartition(":")
        out.append((host or "127.0.0.1", int(port or 2379)) if host else (item, 2379))
    if not out:
        raise ValueError("no etcd endpoint given")
    return out


def _items(spec: str | Sequence[str]) -> list[str]:
    return spec.split(",") if isinstance(spec, str) else list(spec)


def _kv(raw: Any) -> KV:
    return KV(raw.key.decode(), raw.value, raw.mod_revision, raw.create_revision, raw.lease)


class Etcd:
    """A connection to an etcd cluster (any endpoint answers; the next one is tried on failure)."""

    def __init__(self, endpoints: str | Sequence[str], timeout: float = 5.0, *, tls: EtcdTLS | None = None) -> None:
        """``tls`` (or ``https://`` endpoints, then trusting the system's roots) talks TLS to every endpoint."""
        self.endpoints = parse_endpoints(endpoints)
        self.timeout = timeout
        if tls is None and any(e.strip().startswith("https://") for e in _items(endpoints)):
            tls = EtcdTLS()
        self.tls = tls
        self._credentials = tls.credentials() if tls is not None else None
        self._index = 0
        self._client: aetcd.Client | None = None

    @property
    def url(self) -> str:
        host, port = self.endpoints[self._index]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    def _connect(self) -> aetcd.Client:
        if self._client is None:
            host, port = self.endpoints[self._index]
            settings: dict[str, Any] = {"host": host, "port": port, "timeout": int(self.timeout) or 1,
                                        "options": dict(_CHANNEL_OPTIONS), "connect_wait_timeout": int(self.timeout)}
            self._client = _TLSClient(self._credentials, **settings) if self._credentials is not None \
                else aetcd.Client(**settings)
        return self._client

    async def leader(self) -> str:
        """The client URL of the cluster's raft leader, as the member this client talks to sees it."""
        async def run(c: aetcd.Client) -> str:
            await c.connect()
            status = await c.maintenancestub.Status(aetcd.rpc.StatusRequest(), timeout=self.timeout)
            members = await c.clusterstub.MemberList(aetcd.rpc.MemberListRequest(), timeout=self.timeout)
            urls = [m.clientURLs[0] for m in members.members if m.ID == status.leader and m.clientURLs]
            if not urls:
                raise StoreUnavailable(f"etcd at {self.url} knows no leader")
            return str(urls[0])
        return await self._call(run)

    async def close(self) -> None:
        """Close the connection; within the deadline: aetcd's close waits for its watcher's lock, which a
        watch being created on a dead member can hold for ever (the caller, a reconcile, hung with it)."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), self.timeout)

    async def _call(self, fn: Callable[[aetcd.Client], Awaitable[T]]) -> T:
        """Run one etcd call; on connection errors try the other endpoints once, then fail fast."""
        last: BaseException | None = None
        for _ in range(len(self.endpoints)):
            client = self._connect()
            try:
                async with asyncio.timeout(self.timeout):  # no task per call, unlike wait_for: the hot path
                    return await fn(client)
            except aetcd.RevisionCompactedError as e:
                raise Gone(f"revision compacted below {e.compacted_revision}") from e
            except (aetcd.ConnectionFailedError, aetcd.ConnectionTimeoutError, aetcd.InternalError,
                    TimeoutError, aetcd.rpc.AioRpcError) as e:
                last = e
                if len(self.endpoints) > 1 and self._client is client:
                    # only the first of the calls that failed on this member moves on: the others found
                    # the next one already, and closing it would end the watches just made on it
                    self._index = (self._index + 1) % len(self.endpoints)
                    await self.close()
            except aetcd.ClientError as e:
                raise StoreUnavailable(f"etcd error: {e}") from e
        raise StoreUnavailable(f"etcd unavailable at {self.url}: {type(last).__name__}: {last}") from last

    async def get(self, key: str) -> KV | None:
        result = await self._call(lambda c: c.get_range(key.encode(), key.encode() + b"\0"))
        return _kv(result.kvs[0]) if result.kvs else None

    async def range(self, prefix: str) -> tuple[list[KV], int]:
        """Every key under ``prefix`` and the store revision of that read."""
        start = prefix.encode()
        result = await self._call(lambda c: c.get_range(start, aetcd.utils.prefix_range_end(start)))
        return [_kv(kv) for kv in result.kvs], result.header.revision

    async def page(self, prefix: str, *, start: str = "", limit: int, revision: int = 0,
                   keys_only: bool = False) -> tuple[list[KV], int, bool]:
        """Up to ``limit`` keys under ``prefix`` from ``start`` on (inclusive), as of ``revision`` (0: now);
        (the keys, the revision read at, whether more follow). Gone when ``revision`` is compacted.
        ``keys_only``: without their values (``value`` is empty), to scan names for a fraction of the bytes."""
        begin = (start or prefix).encode()
        request = aetcd.rpc.RangeRequest(key=begin, range_end=aetcd.utils.prefix_range_end(prefix.encode()),
                                         limit=limit, revision=revision, keys_only=keys_only)
        result = await self._at_revision(
            lambda c: c.kvstub.Range(request, timeout=self.timeout, metadata=c.metadata),
            f"the list's revision {revision} is compacted")
        return [_kv(kv) for kv in result.kvs], revision or int(result.header.revision), bool(result.more)

    async def get_at(self, keys: Sequence[str], revision: int) -> list[KV]:
        """The values of ``keys`` as of ``revision``, in the order given (a key absent then is left out): one
        transaction per ``MAX_TXN_OPS`` keys (etcd's ``--max-txn-ops``). Gone when ``revision`` is compacted."""
        found: list[KV] = []
        for first in range(0, len(keys), MAX_TXN_OPS):
            request = aetcd.rpc.TxnRequest(success=[aetcd.rpc.RequestOp(request_range=aetcd.rpc.RangeRequest(
                key=key.encode(), range_end=key.encode() + b"\0", revision=revision))
                for key in keys[first:first + MAX_TXN_OPS]])
            result = await self._at_revision(partial(self._txn, request),
                                             f"the list's revision {revision} is compacted")
            found.extend(_kv(kv) for answer in result.responses for kv in answer.response_range.kvs)
        return found

    async def revision(self) -> int:
        result = await self._call(lambda c: c.get_range(b"\0", b"\0\0"))
        return int(result.header.revision)

    async def check_revision(self, revision: int) -> None:
        """Raise Gone when ``revision`` is compacted: a read at it fails just as a watch from it would."""
        request = aetcd.rpc.RangeRequest(key=b"\0", range_end=b"\0\0", revision=revision, count_only=True)

        async def read(c: aetcd.Client) -> None:
            try:
                await c.kvstub.Range(request, timeout=self.timeout, metadata=c.metadata)
            except aetcd.rpc.AioRpcError as e:
                if e.code() != aetcd.rpc.StatusCode.OUT_OF_RANGE or "compacted" in (e.details() or ""):
                    raise  # a future revision is fine to watch
        await self._at_revision(read, f"resourceVersion {revision - 1} is too old")

    async def _txn(self, request: Any, c: aetcd.Client) -> Any:
        return await c.kvstub.Txn(request, timeout=self.timeout, metadata=c.metadata)

    async def _at_revision(self, rpc: Callable[[aetcd.Client], Awaitable[T]], gone: str) -> T:
        """A raw gRPC read at a past revision; Gone (``gone``: etcd's words) when etcd has compacted it."""
        async def run(c: aetcd.Client) -> T:
            await c.connect()
            try:
                return await rpc(c)
            except aetcd.rpc.AioRpcError as e:
                details = e.details() or ""
                if e.code() == aetcd.rpc.StatusCode.OUT_OF_RANGE and "compacted" in details:
                    raise Gone(f"{gone}: {details}") from e
                raise

        return await self._call(run)

    async def put(self, key: str, value: bytes, lease: int | None = None) -> int:
        result = await self._call(lambda c: c.put(key.encode(), value, lease=lease))
        return int(result.header.revision)

    async def delete(self, key: str) -> bool:
        result = await self._call(lambda c: c.delete(key.encode()))
        return result is not None

    async def delete_prefix(self, prefix: str) -> None:
        await self._call(lambda c: c.delete_prefix(prefix.encode()))

    async def txn_put(self, key: str, value: bytes, compares: Sequence[Compare], *,
                      lease: int | None = None) -> tuple[bool, int]:
        """Put ``key`` when every compare holds; (succeeded, revision of the write or 0)."""
        return await self.txn_puts([(key, value)], compares, lease=lease)

    async def txn_puts(self, items: Sequence[tuple[str, bytes]], compares: Sequence[Compare], *,
                       lease: int | None = None) -> tuple[bool, int]:
        """Put every key of ``items`` in one transaction (one revision) when every compare holds; (succeeded,
        revision of the writes or 0). At most ``MAX_TXN_OPS`` puts."""
        def run(c: aetcd.Client) -> Awaitable[Any]:
            txn: Awaitable[Any] = c.transaction(
                compare=[_compare(c, x) for x in compares],
                success=[c.transactions.put(key.encode(), value, lease=lease) for key, value in items], failure=[])
            return txn
        ok, responses = await self._call(run)
        return bool(ok), int(responses[0].response_put.header.revision) if ok else 0

    async def txn_put_or_get(self, key: str, value: bytes, compares: Sequence[Compare]) -> tuple[int, KV | None]:
        """Put ``key`` when every compare holds, else read it, in one round trip: (the put's revision, None),
        or (0, the key as it is; None when it is absent)."""
        def run(c: aetcd.Client) -> Awaitable[Any]:
            txn: Awaitable[Any] = c.transaction(
                compare=[_compare(c, x) for x in compares], success=[c.transactions.put(key.encode(), value)],
                failure=[c.transactions.get(key.encode())])
            return txn
        ok, responses = await self._call(run)
        if ok:
            return int(responses[0].response_put.header.revision), None
        found = responses[0]  # aetcd's (value, rtypes.Get) pairs
        return 0, _kv(found[0][1]) if found else None

    async def txn_delete(self, key: str, compares: Sequence[Compare]) -> tuple[bool, int]:
        def run(c: aetcd.Client) -> Awaitable[Any]:
            txn: Awaitable[Any] = c.transaction(compare=[_compare(c, x) for x in compares],
                                                success=[c.transactions.delete(key.encode())], failure=[])
            return txn
        ok, responses = await self._call(run)
        return bool(ok), int(responses[0].response_delete_range.header.revision) if ok else 0

    async def grant_lease(self, ttl: int) -> int:
        lease = await self._call(lambda c: c.lease(ttl))
        return int(lease.id)

    async def refresh_lease(self, lease_id: int) -> int:
        """Keep a lease alive; its remaining TTL (0 or less: it has expired)."""
        reply = await self._call(lambda c: c.refresh_lease(lease_id))
        return int(reply.TTL) if reply is not None else 0

    async def revoke_lease(self, lease_id: int) -> None:
        await self._call(lambda c: c.revoke_lease(lease_id))

    async def compact(self, revision: int) -> None:
        await self._call(lambda c: c.compact(revision, physical=True))

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[RawEvent]:
        """Changes under ``prefix`` from ``start_revision`` (inclusive); Gone when compacted.

        Raises StoreUnavailable when the stream breaks: the caller resumes from its last revision.
        """
        start = prefix.encode()
        creating = asyncio.ensure_future(self._call(lambda c: c.watch(
            start, range_end=aetcd.utils.prefix_range_end(start), start_revision=start_revision, prev_kv=True,
            progress_notify=True)))
        try:
            # aetcd's watch creation holds its watcher's lock and condition: interrupting it half-way
            # can leave the watcher stuck, so a cancelled caller lets it finish, then cancels the watch
            watch = await asyncio.shield(creating)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                made = await asyncio.wait_for(creating, self.timeout)
                await asyncio.wait_for(made.cancel(), self.timeout)
            raise
        try:
            iterator = watch.__aiter__()
            while True:
                try:
                    event = await iterator.__anext__()
                except StopAsyncIteration:
                    raise StoreUnavailable("etcd watch stream ended") from None
                except aetcd.RevisionCompactedError as e:
                    raise Gone(f"revision {start_revision} compacted (now {e.compacted_revision})") from e
                except (aetcd.ClientError, aetcd.rpc.AioRpcError) as e:
                    raise StoreUnavailable(f"etcd watch broke: {e}") from e
                if event is None:
                    raise StoreUnavailable("etcd watch stream ended")
                kind = str(event.kind)
                value = event.kv.value if kind == "PUT" else (event.prev_kv.value if event.prev_kv else b"")
                yield RawEvent(kind, event.kv.key.decode(), value, event.kv.mod_revision, event.kv.version)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.wait_for(watch.cancel(), self.timeout))


def _compare(client: aetcd.Client, compare: Compare) -> Any:
    key = compare.key.encode()
    target = {"mod": client.transactions.mod, "create": client.transactions.create,
              "value": client.transactions.value}[compare.target](key)
    return target == compare.value
