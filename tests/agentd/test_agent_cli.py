"""``persys agent --runtime simulated --nodes N``: hollow nodes in one process, each on its own port."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from agent_support import KEY_ID, SECRET, new_uid

from persys.agentclient import AgentClient
from persys.store.server import free_port
from tests.support.eventually import eventually
from tests.support.workloads import agent_workload


async def test_hollow_nodes_from_the_command_line(tmp_path: Path) -> None:
    secret = tmp_path / "hmac.secret"
    secret.write_text(SECRET.decode() + "\n")
    base = free_port()
    while any(not _free(base + i) for i in range(3)):
        base = free_port()
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("persys")), "--home", str(tmp_path / "home"), "agent", "--name", "hollow",
        "--runtime", "simulated", "--nodes", "3", "--listen", "127.0.0.1:1", "--base-port", str(base),
        "--server", "", "--hmac-secret", str(secret), "--state-dir", str(tmp_path / "state"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    clients = [AgentClient(f"http://127.0.0.1:{base + i}", KEY_ID, SECRET, timeout=2) for i in range(3)]
    try:
        async def all_healthy() -> bool:
            if process.returncode is not None:  # it died (a port taken meanwhile, say): say why
                raise AssertionError((await process.stderr.read()).decode()[-2000:])  # type: ignore[union-attr]
            return all([await c.healthz() for c in clients])

        await eventually(all_healthy, timeout=30, what="three hollow nodes answering")
        for i, client in enumerate(clients):
            uid = new_uid()
            op = await client.wait(await client.apply(agent_workload(uid, f"hollow-{i}")), 10)
            assert op["state"] == "succeeded"
            assert (await client.get(uid))["node"] == f"hollow-{i}"
    finally:
        for client in clients:
            await client.close()
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 20)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, (await process.stderr.read()).decode()[-2000:]  # type: ignore[union-attr]


def _free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
