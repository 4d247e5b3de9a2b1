"""``LeaseKeeper``: keeps one etcd lease alive from a thread of its own, over etcd's HTTP gateway.

A controller manager holds leadership on a lease of a few seconds (``persys.runtime.leader``). Its
event loop runs every reconcile of every controller, and under load one turn of the loop can take
longer than the lease: at 10,000 workloads on 2 cores the manager lost its 3 s lease every few
seconds, and every new term began with a pass over every object, which made the next loss certain
(``bench/scale.py``). A keep-alive that must wait its turn in that loop cannot be on time, so it
runs here instead: a thread that sends etcd's ``LeaseKeepAlive`` (``POST /v3/lease/keepalive``, the
gRPC gateway every etcd member serves on its client port, TLS and client certificate included)
every ``interval`` seconds, to each endpoint in turn until one answers.

The thread renews only while the loop shows signs of life: the loop calls ``beat()``, and after
``stall_limit`` seconds without one the thread stops renewing, so the lease of a process whose loop
is wedged expires and another process takes over. This is the one place Persys talks to etcd
outside ``persys.store.etcd``'s gRPC client: it must not depend on the event loop that client runs on.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.request
from typing import TYPE_CHECKING

from persys.observability.logging import get_logger

if TYPE_CHECKING:
    from persys.store.etcd import Etcd, EtcdTLS

log = get_logger("leasekeeper")


class LeaseKeeper:
    """Renews lease ``lease_id`` every ``interval`` seconds from a daemon thread while the loop beats."""

    def __init__(self, etcd: Etcd, lease_id: int, *, interval: float, stall_limit: float = 30.0) -> None:
        self.lease_id = lease_id
        self.interval = interval
        self.stall_limit = stall_limit
        scheme = "https" if etcd.tls is not None else "http"
        self.urls = [f"{scheme}://{host}:{port}/v3/lease/keepalive" for host, port in etcd.endpoints]
        self._context = _tls_context(etcd.tls) if etcd.tls is not None else None
        self._at = 0  # the endpoint that answered last
        now = time.monotonic()
        self.last_ok = now  # when etcd last confirmed the lease (it was just granted)
        self.gone = False  # etcd answered that the lease does not exist (expired or revoked)
        self._beat = now
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-keeper-{lease_id:x}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def beat(self) -> None:
        """The event loop is alive (called from it, at least every ``stall_limit`` seconds)."""
        self._beat = time.monotonic()

    def stop(self) -> None:
        """Stop renewing (the thread ends within one request's timeout; nobody waits for it)."""
        self._stop.set()

    def _run(self) -> None:
        stalled = False
        while not self._stop.wait(self.interval):
            if time.monotonic() - self._beat > self.stall_limit:
                if not stalled:
                    log.warning("event loop stalled; no longer renewing the lease", lease=f"{self.lease_id:x}",
                                seconds=round(time.monotonic() - self._beat, 1))
                stalled = True
                continue
            stalled = False
            ttl = self._keepalive()
            if ttl is None:
                continue  # no endpoint answered: the loop's holder gives up after the lease's TTL
            if ttl <= 0:
                self.gone = True
                return
            self.last_ok = time.monotonic()

    def _keepalive(self) -> int | None:
        """The lease's remaining TTL as etcd answers it (0: no such lease); None when no endpoint answered."""
        body = json.dumps({"ID": str(self.lease_id)}).encode()
        for i in range(len(self.urls)):
            at = (self._at + i) % len(self.urls)
            request = urllib.request.Request(self.urls[at], data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=max(self.interval, 1.0), context=self._context) as r:
                    answer = json.loads(r.read())
            except (OSError, ValueError) as e:
                log.debug("lease keep-alive failed", url=self.urls[at], error=str(e))
                continue
            self._at = at
            result = answer.get("result") if isinstance(answer, dict) else None
            return int((result or {}).get("TTL") or 0)
        return None


def _tls_context(tls: EtcdTLS) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(tls.ca) if tls.ca else None)
    if tls.cert is not None and tls.key is not None:
        context.load_cert_chain(str(tls.cert), str(tls.key))
    return context
