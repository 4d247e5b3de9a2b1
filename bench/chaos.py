"""Chaos benchmark: kill -9 under load on a three-member etcd, two API servers, two controller managers.

Starts a three-member etcd (``EtcdCluster``), ``persys dns``, two ``persys server``, two
``persys controllers`` (one leads, one stands by) and ``persys agent --runtime simulated`` with
hollow nodes, each a separate process on 127.0.0.1, every one given all three etcd endpoints
(the etcd leader's first, so that killing it kills the member they all talk to). The agent finds
the API servers by DNS SRV; this script's client has both. Then, one round each:

- baseline: 1,000 workloads are created (concurrency 32) and converge with no kill;
- the same 1,000 in a fresh namespace, with one kill -9 once a quarter of them are created:
  the etcd leader (found with etcd's status call), the first API server, the leading controller
  manager (its pid is in its leader identity), the agent process (started again at once).

Each round reports the seconds from the kill until every workload is Running again, checked
against the hollow runtime's own record (``GET /v1/workloads`` on every node): each workload
exactly once, running, on the node it is bound to (lost, duplicated, misplaced, stray). The
killed process is started again after its round; the round's workloads are then deleted and must
leave every node (leaked). Duplicates are also counted at every check during recovery.

Run: .venv/bin/python bench/chaos.py [--workloads 1000] [--nodes 20] [--quick]
     (prints a table, writes bench/results-chaos.json)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")  # this process forks children while grpc runs

import aiohttp  # noqa: E402
from harness import IMAGE, PERSYS, cancel_on_sigterm, spawn, stop, wait_http, write_results  # noqa: E402
from scale import free_port_range  # noqa: E402

from persys.agentclient import AgentClient  # noqa: E402
from persys.client import ApiClient  # noqa: E402
from persys.controllers.conditions import node_ready  # noqa: E402
from persys.errors import Conflict, NotFound, PersysError  # noqa: E402
from persys.observability import logging  # noqa: E402
from persys.security import pki  # noqa: E402
from persys.security.keyring import read_keyring  # noqa: E402
from persys.store import EtcdTLS  # noqa: E402
from persys.store.keys import leader_key  # noqa: E402
from persys.store.server import EtcdCluster, EtcdServer, free_port  # noqa: E402

KILLS = ("etcd-leader", "api", "controllers-leader", "agent")
CONCURRENCY = 32
ZONE = "persys.local"
RETRYABLE = (PersysError, aiohttp.ClientError, OSError, TimeoutError)


class ChaosCluster:
    """The etcd members and every Persys component as separate processes under one temp dir."""

    def __init__(self, tmp: Path, nodes: int, *, tls: bool = False) -> None:
        self.tmp, self.nodes, self.tls = tmp, nodes, tls
        self.home = tmp / "home"
        self.paths = pki.HomePaths(self.home)
        self.api_ports = [(free_port(), free_port()) for _ in range(2)]
        self.etcd = EtcdCluster(tmp, tls=self._member_tls() if tls else None)
        self.endpoints = ""
        self.dns_port = free_port()
        self.agent_base = free_port_range(nodes)
        self.node_prefix = "chaos"
        self.processes: dict[str, Any] = {}  # name -> Popen
        self.commands: dict[str, list[str]] = {}
        self.killed_member: EtcdServer | None = None

    def _member_tls(self) -> EtcdTLS:
        paths = pki.init(self.home, server=self.api_url(0))
        cert, key = pki.issue(paths, "etcd-member", "servers", sans=["127.0.0.1", "localhost"])
        return EtcdTLS(paths.ca_cert, cert, key)

    def api_url(self, i: int) -> str:
        return f"https://127.0.0.1:{self.api_ports[i][1]}"

    def etcd_flags(self, identity: str) -> list[str]:
        """``--etcd`` with every endpoint, and a client certificate of the identity's own when TLS is on."""
        if not self.tls:
            return ["--etcd", self.endpoints]
        cert, key = pki.issue(self.paths, f"etcd-{identity}", "controllers")
        return ["--etcd", self.endpoints, "--etcd-ca", str(self.paths.ca_cert), "--etcd-cert", str(cert),
                "--etcd-key", str(key)]

    def client(self) -> ApiClient:
        return ApiClient(self.api_url(0), ca=self.paths.ca_cert, cert=self.paths.cert("admin"),
                         key=self.paths.key("admin"), timeout=30.0, fallbacks=[self.api_url(1)])

    async def start(self) -> None:
        pki.init(self.home, server=self.api_url(0))
        for i in range(self.nodes):
            pki.issue(self.paths, f"node-{self.node_prefix}-{i}", "agents")
        await self.etcd.start()
        etcd = self.etcd.client()
        try:
            leader = await etcd.leader()
        finally:
            await etcd.close()
        urls = [m.url for m in self.etcd.members]
        self.endpoints = ",".join([leader, *(u for u in urls if u != leader)])
        home = ["--home", str(self.home)]
        self.commands["dns"] = [PERSYS, *home, "dns", *self.etcd_flags("dns"), "--listen",
                                f"127.0.0.1:{self.dns_port}", "--zone", ZONE]
        for i, (plain, secure) in enumerate(self.api_ports):
            self.commands[f"api-{i}"] = [PERSYS, *home, "server", *self.etcd_flags(f"api-{i}"), "--listen",
                                         f"127.0.0.1:{plain}", "--secure-listen", f"127.0.0.1:{secure}",
                                         "--zone", ZONE, "--advertise", "127.0.0.1"]
        self.commands["agent"] = [PERSYS, *home, "agent", "--name", self.node_prefix, "--runtime", "simulated",
                                  "--nodes", str(self.nodes), "--listen", f"127.0.0.1:{self.agent_base}",
                                  "--base-port", str(self.agent_base), "--server", self.api_url(0),
                                  "--dns", f"127.0.0.1:{self.dns_port}", "--zone", ZONE]
        self.launch("dns")
        for i in range(2):
            self.launch(f"api-{i}")
            wait_http(f"http://127.0.0.1:{self.api_ports[i][0]}/readyz", 60, self.processes[f"api-{i}"])
        for name in ("controllers-a", "controllers-b"):
            self.start_controllers(name)
        self.launch("agent")

    def launch(self, name: str) -> None:
        self.processes[name] = spawn(self.commands[name], self.tmp / f"{name}.log")

    def start_controllers(self, name: str) -> None:
        port = free_port()
        self.commands[name] = [PERSYS, "--home", str(self.home), "controllers", *self.etcd_flags("controllers"),
                               "--listen", f"127.0.0.1:{port}"]
        self.launch(name)
        wait_http(f"http://127.0.0.1:{port}/healthz", 60, self.processes[name])

    async def wait_nodes_ready(self, client: ApiClient, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}; see {self.tmp}/{name}.log")
            nodes, _ = await client.list("Node", None)
            if sum(1 for n in nodes if n.metadata.name.startswith(self.node_prefix) and node_ready(n)) >= self.nodes:
                return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"{self.nodes} nodes were not Ready in {timeout:.0f}s")

    # -- the kills -------------------------------------------------------------------------

    async def kill(self, target: str) -> str:
        """kill -9 ``target``; what was killed (the agent is started again at once)."""
        if target == "etcd-leader":
            etcd = self.etcd.client()
            try:
                member = self.etcd.member(await etcd.leader())
            finally:
                await etcd.close()
            assert member.process is not None
            os.kill(member.process.pid, signal.SIGKILL)
            await member.wait_exit()
            self.killed_member = member
            return f"{member.name} ({'first' if self.endpoints.startswith(member.url) else 'not first'} endpoint)"
        if target == "controllers-leader":
            name = await self.leading_controllers()
            self._kill_process(name)
            return name
        name = "api-0" if target == "api" else target
        self._kill_process(name)
        if target == "agent":
            self.launch("agent")
        return name

    def _kill_process(self, name: str) -> None:
        process = self.processes[name]
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)

    async def leading_controllers(self) -> str:
        etcd = self.etcd.client()
        try:
            for _ in range(200):
                kv = await etcd.get(leader_key("controllers"))
                if kv is not None:
                    pid = int(kv.value.decode().split("-")[-2])  # host-pid-id (persys.runtime.leader)
                    return next(n for n, p in self.processes.items() if p.pid == pid and p.poll() is None)
                await asyncio.sleep(0.1)
        finally:
            await etcd.close()
        raise TimeoutError("no controller manager leads")

    async def restore(self, target: str, killed: str) -> None:
        """Start again what ``target``'s kill took down (the agent already was)."""
        if target == "etcd-leader":
            assert self.killed_member is not None
            await self.etcd.restart(self.killed_member)
        elif target == "api":
            self.launch("api-0")
            wait_http(f"http://127.0.0.1:{self.api_ports[0][0]}/readyz", 60, self.processes["api-0"])
        elif target == "controllers-leader":
            del self.processes[killed]
            self.start_controllers(f"{killed}-again")

    def stop(self) -> None:
        for process in self.processes.values():
            stop(process)
        self.etcd.stop()

    def log_tails(self, lines: int = 15) -> str:
        tails = []
        for name in self.processes:
            path = self.tmp / f"{name}.log"
            text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
            tails.append(f"--- {name}.log ---\n" + "\n".join(line[:300] for line in text))
        return "\n".join(tails)


# -- what runs where -------------------------------------------------------------------------

async def census(cluster: ChaosCluster, client: ApiClient, namespace: str) -> dict[str, int]:
    """The API's workloads in ``namespace`` against every hollow node's own record of what it runs."""
    workloads, _ = await client.list("Workload", namespace)
    bound = {w.metadata.uid: str(w.spec.get("nodeName") or "") for w in workloads}
    nodes, _ = await client.list("Node", None)
    keyring = read_keyring(cluster.paths.hmac_secret)
    records: list[tuple[str, str, str]] = []  # (uid, node, state)
    for node in nodes:
        if not node.metadata.name.startswith(cluster.node_prefix):
            continue
        async with AgentClient.for_node(node.metadata.name, str(node.spec["address"]),
                                        lambda: keyring.signing(time.time()), ca=cluster.paths.ca_cert,
                                        timeout=10.0) as agent:
            items = await agent.list()
        records += [(item["uid"], node.metadata.name, item["state"]) for item in items
                    if item.get("namespace") == namespace]
    copies = Counter(uid for uid, _, _ in records)
    running = {uid for uid, _, state in records if state == "running"}
    return {"workloads": len(workloads),
            "running_in_api": sum(1 for w in workloads if w.status.get("phase") == "Running"),
            "lost": sum(1 for uid in bound if uid not in running),
            "duplicates": sum(1 for n in copies.values() if n > 1),
            "misplaced": sum(1 for uid, node, _ in records if uid in bound and bound[uid] != node),
            "stray": sum(1 for uid in copies if uid not in bound)}


def converged(c: dict[str, int], total: int) -> bool:
    return c["workloads"] == c["running_in_api"] == total and not (c["lost"] or c["duplicates"] or c["misplaced"]
                                                                    or c["stray"])


async def create(client: ApiClient, namespace: str, name: str) -> None:
    """Create one workload, retrying through a kill (a Conflict: an earlier attempt got through)."""
    body = {"apiVersion": "persys.dev/v1", "kind": "Workload",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "chaos"}},
            "spec": {"type": "container", "image": IMAGE, "command": ["sleep", "3600"], "network": "host"}}
    for _ in range(300):
        try:
            await client.request("POST", client.path("workloads", namespace), body=body)
            return
        except Conflict:
            return
        except RETRYABLE:
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{namespace}/{name} could not be created")


async def delete(client: ApiClient, namespace: str, name: str) -> None:
    for _ in range(300):
        try:
            await client.delete("Workload", name, namespace=namespace)
            return
        except NotFound:
            return
        except RETRYABLE:
            await asyncio.sleep(0.2)


async def in_parallel(count: int, op: Any, at: int = -1, trigger: asyncio.Event | None = None) -> None:
    """``op(0..count-1)`` with CONCURRENCY workers; ``trigger`` is set once ``at`` of them are done."""
    indexes, done = iter(range(count)), 0

    async def worker() -> None:
        nonlocal done
        for i in indexes:
            await op(i)
            done += 1
            if trigger is not None and done == at:
                trigger.set()

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def one_round(cluster: ChaosCluster, client: ApiClient, n: int, target: str | None,
                    timeout: float) -> dict[str, Any]:
    """Create ``n`` workloads in a namespace of the round's own, kill ``target`` a quarter of the way,
    wait until everything is Running once on its node, then delete them all and wait until no node
    holds any."""
    namespace = f"chaos-{target or 'baseline'}"
    result: dict[str, Any] = {"kill": target or "none", "workloads": n}
    trigger = asyncio.Event()
    started = time.perf_counter()
    creating = asyncio.create_task(in_parallel(n, lambda i: create(client, namespace, f"w{i}"), max(1, n // 4),
                                               trigger), name="chaos-create")
    killed_at = started
    if target is not None:
        await trigger.wait()
        killed_at = time.perf_counter()
        result["killed"] = await cluster.kill(target)
    await creating
    result["create_s"] = round(time.perf_counter() - started, 2)
    worst_duplicates, state = 0, {}
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        with contextlib.suppress(*RETRYABLE):
            state = await census(cluster, client, namespace)
            worst_duplicates = max(worst_duplicates, state["duplicates"])
            if converged(state, n):
                break
        await asyncio.sleep(0.5)
    done = time.perf_counter()
    result.update(all_running=converged(state, n), seconds_total=round(done - started, 2),
                  seconds_after_kill=round(done - killed_at, 2), duplicates_seen=worst_duplicates, **state)
    if target is not None:
        await cluster.restore(target, result["killed"])
    await in_parallel(n, lambda i: delete(client, namespace, f"w{i}"))
    leaked = state
    for _ in range(int(timeout)):
        with contextlib.suppress(*RETRYABLE):
            leaked = await census(cluster, client, namespace)
            if leaked["workloads"] == 0 and leaked["stray"] == 0:
                break
        await asyncio.sleep(1.0)
    result["leaked_after_delete"] = leaked["stray"]
    return result


async def measure(cluster: ChaosCluster, workloads: int, timeout: float,
                  kills: tuple[str, ...] = KILLS) -> dict[str, Any]:
    results: dict[str, Any] = {"workloads": workloads, "nodes": cluster.nodes, "etcd_members": 3,
                               "api_servers": 2, "controller_managers": 2, "etcd_tls": cluster.tls}
    async with cluster.client() as client:
        await cluster.wait_nodes_ready(client)
        results["baseline"] = await one_round(cluster, client, workloads, None, timeout)
        results["rounds"] = [await one_round(cluster, client, workloads, target, timeout) for target in kills]
    rounds = results["rounds"]
    for r in rounds:  # the same 1,000 converging with no kill, in the same run
        r["extra_over_baseline_s"] = round(r["seconds_total"] - results["baseline"]["seconds_total"], 2)
    results["lost"] = sum(r["lost"] for r in rounds)
    results["duplicates"] = sum(r["duplicates"] for r in rounds)
    results["duplicates_seen"] = sum(r["duplicates_seen"] for r in rounds)
    results["all_running"] = all(r["all_running"] for r in [results["baseline"], *rounds])
    results["max_seconds_after_kill"] = max(r["seconds_after_kill"] for r in rounds)
    return results


def table(r: dict[str, Any]) -> str:
    base = r["baseline"]
    lines = [f"chaos: {r['workloads']} workloads over {r['nodes']} hollow nodes; 3 etcd members"
             f"{' (TLS)' if r['etcd_tls'] else ''}, 2 API servers, 2 controller managers, kill -9 under load",
             f"{'kill -9':<20}{'killed':<26}{'to all Running':>15}{'total':>8}{'vs none':>8}{'lost':>6}{'dup':>5}"
             f"{'dup seen':>9}{'misplaced':>10}{'stray':>6}{'leaked':>7}"]
    for row in [base, *r["rounds"]]:
        after = f"{row['seconds_after_kill']:.1f} s" if row["kill"] != "none" else "—"
        extra = f"{row['extra_over_baseline_s']:+.1f}s" if "extra_over_baseline_s" in row else "—"
        lines.append(f"{row['kill']:<20}{row.get('killed', '—'):<26}{after:>15}{row['seconds_total']:>7.1f}s"
                     f"{extra:>8}{row['lost']:>6}{row['duplicates']:>5}{row['duplicates_seen']:>9}{row['misplaced']:>10}"
                     f"{row['stray']:>6}{row['leaked_after_delete']:>7}"
                     + ("" if row["all_running"] else "  (timed out)"))
    lines.append(f"baseline (no kill): all {base['workloads']} Running {base['seconds_total']:.1f} s after the first "
                 "create; 'to all Running': from the kill (a quarter of the creates in); 'vs none': the round's "
                 "total minus the baseline's; aim after each kill: < 30 s, 0 lost, 0 duplicates")
    return "\n".join(lines)


async def run(workloads: int, nodes: int, timeout: float, tls: bool) -> dict[str, Any]:
    cancel_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="persys-bench-chaos-") as tmp:
        cluster = ChaosCluster(Path(tmp), nodes, tls=tls)
        try:
            await cluster.start()
            results = await measure(cluster, workloads, timeout)
            if not results["all_running"]:
                print(cluster.log_tails(), file=sys.stderr)
            return results
        except BaseException:
            print(cluster.log_tails(), file=sys.stderr)
            raise
        finally:
            cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=180.0, help="Seconds a round may take to converge.")
    parser.add_argument("--tls", action="store_true", help="etcd with TLS and client certificates")
    parser.add_argument("--quick", action="store_true", help="200 workloads over 10 nodes")
    args = parser.parse_args()
    logging.configure(os.environ.get("PERSYS_LOG_LEVEL", "warning"))
    if args.quick:
        args.workloads, args.nodes = 200, 10
    results = asyncio.run(run(args.workloads, args.nodes, args.timeout, args.tls))
    print(table(results))
    print(f"wrote {write_results('chaos', results)}")


if __name__ == "__main__":
    main()
