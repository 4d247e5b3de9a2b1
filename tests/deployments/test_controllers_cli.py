"""``persys controllers`` runs the Deployment controller beside the others, by default: as its own
process (etcd for the controllers, the API for the Deployment controller), it makes a Deployment's
Workloads, and on SIGTERM it exits 0 and gives its Lease up."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from persys.store.server import EtcdServer, free_port
from tests.deployments.watching import controlled_by, deployment
from tests.support.cluster import RunningApi
from tests.support.eventually import eventually


async def test_persys_controllers_runs_deployments(api: RunningApi, etcd_server: EtcdServer) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "persys.cli.main", "--home", str(api.pki.home), "controllers", "--etcd",
        etcd_server.url, "--listen", f"127.0.0.1:{free_port()}", "--server", api.secure_url,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PERSYS_LOG_LEVEL": "warning"})
    try:
        async with api.client() as admin:
            obj, _ = await admin.apply_raw(deployment("ctl", replicas=2))

            async def replicas() -> bool:
                workloads, _ = await admin.list("Workload", "default")
                return sum(1 for w in workloads if controlled_by(w, obj)) == 2  # no nodes: they wait, Pending

            await eventually(replicas, timeout=60, what="the Deployment's two Workloads")
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 30) == 0
            lease = await admin.get("Lease", "deployment-controller")
            assert lease.spec["holderIdentity"] == ""  # given up on the way out
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        if process.stderr is not None:
            await process.stderr.read()
