"""An example controller to copy: delete workloads some time after they finished.

A workload annotated ``persys.dev/ttl-seconds-after-finished: "60"`` whose phase is Exited
or Failed is deleted 60 seconds after ``status.finishedAt``. It shows the whole framework in
a few lines: read from the informer cache, decide, write through the store with the leader's
fence, and ask to be called again later with ``Result(requeue_after=…)``.

Run it against a cluster's etcd:  python examples/ttl_after_finished.py http://127.0.0.1:2379
"""

from __future__ import annotations

import asyncio
import sys

from persys.errors import NotFound
from persys.resources.model import ObjectKey
from persys.resources.phase import Phase
from persys.runtime import Controller, Manager, Result
from persys.runtime.clock import from_iso
from persys.store import Etcd

ANNOTATION = "persys.dev/ttl-seconds-after-finished"
FINISHED = (Phase.EXITED, Phase.FAILED)


class TTLAfterFinished(Controller):
    """Deletes finished workloads once their TTL has passed."""

    kind = "Workload"
    name = "ttl-after-finished"

    async def reconcile(self, key: ObjectKey) -> Result:
        workload = self.cache.get(key)  # the informer's cache: never mutate, copy() first
        if workload is None or workload.metadata.deletionTimestamp:
            return Result()
        ttl = workload.metadata.annotations.get(ANNOTATION)
        finished = from_iso(workload.status.get("finishedAt"))
        if ttl is None or finished is None or workload.status.get("phase") not in FINISHED:
            return Result()
        remaining = finished + float(ttl) - self.clock.now()
        if remaining > 0:
            return Result(requeue_after=remaining)  # come back when it is due
        self.log.info("deleting finished workload", workload=str(key))
        try:
            await self.store.delete("Workload", key.namespace, key.name, fence=self.fence)
        except NotFound:
            pass  # someone was faster
        return Result()


async def main(etcd_url: str) -> None:
    manager = Manager(Etcd(etcd_url), component="ttl-after-finished", listen=("127.0.0.1", 7073), owns_etcd=True)
    manager.add(TTLAfterFinished())
    await manager.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:2379"))
