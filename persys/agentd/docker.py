"""The ``docker`` runtime: container and compose workloads on the local dockerd.

It owns the aiodocker connection, routes each uid to the backend that runs it
(``ContainerRuntime`` or ``ComposeRuntime``) and turns Docker's event stream, filtered to
the containers its ``Owner`` claims (this node of this cluster; compose containers carry the
labels too), into state events.
When the event stream breaks (dockerd restarted) it reconnects with back-off and
republishes every state, so subscribers miss nothing. Every apply goes through here, so this
is where a failed launch of either backend is remembered and reported (``LaunchReports``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp
from aiodocker.events import DockerEvents

from persys.agentd.compose import ComposeRuntime
from persys.agentd.containers import ContainerRuntime
from persys.agentd.dockerapi import LABEL_UID, Owner, docker_call
from persys.agentd.events import EventHub, LaunchReports
from persys.agentd.prober import ProbeResults, Target
from persys.agentd.probes import clip
from persys.agentd.runtime import WorkloadSpec, WorkloadState
from persys.errors import NotFound, PersysError, RuntimeFailure
from persys.observability.logging import get_logger
from persys.runtime.backoff import Backoff

WATCHED_ACTIONS = ["start", "die", "stop", "kill", "oom", "destroy", "pause", "unpause", "restart"]
MAX_BACKOFF = 30.0
log = get_logger("agent")


class DockerRuntime:
    """Runtime over dockerd: ``type: container`` as containers, ``type: compose`` as projects."""

    name = "docker"

    def __init__(self, node: str, hub: EventHub, state_dir: Path, *, docker_url: str | None = None,
                 stop_timeout: int = 10, cluster: str = "") -> None:
        self.node = node
        self.owner = Owner(node, cluster)
        self.hub = hub
        self.state_dir = state_dir
        self.docker_url = docker_url
        self.stop_timeout = stop_timeout
        self.reports = LaunchReports(node, hub)
        self.probe_results = ProbeResults()
        self._docker: aiodocker.Docker | None = None
        self._pump: asyncio.Task[None] | None = None
        self._containers: ContainerRuntime | None = None
        self._compose: ComposeRuntime | None = None

    @property
    def containers(self) -> ContainerRuntime:
        if self._containers is None:
            raise RuntimeFailure("docker runtime is not open")
        return self._containers

    @property
    def compose(self) -> ComposeRuntime:
        if self._compose is None:
            raise RuntimeFailure("docker runtime is not open")
        return self._compose

    async def open(self) -> None:
        self._docker = aiodocker.Docker(url=self.docker_url,
                                        timeout=aiohttp.ClientTimeout(total=120, sock_connect=10))
        try:
            with docker_call("version"):
                await self._docker.version()
        except (PersysError, OSError, aiohttp.ClientError) as e:
            await self._docker.close()
            self._docker = None
            raise RuntimeFailure(f"cannot reach dockerd: {e}") from e
        self._containers = ContainerRuntime(self.owner, self._docker, self.reports, self.stop_timeout,
                                            self.probe_results)
        self._compose = ComposeRuntime(self.owner, self._docker, self.state_dir / "compose", self.stop_timeout,
                                       self.probe_results)
        self._pump = asyncio.create_task(self._follow_docker_events(), name=f"agent-docker-events-{self.node}")

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = None
        if self._docker is not None:
            await self._docker.close()
            self._docker = None

    # -- routing --------------------------------------------------------------------------

    async def _owner(self, uid: str) -> ContainerRuntime | ComposeRuntime:
        return self.compose if self.compose.owns(uid) else self.containers

    async def apply(self, workload: WorkloadSpec) -> WorkloadState:
        """Launch through the owning backend; a failure is remembered and published, then re-raised."""
        self.reports.clear(workload.uid)  # a new attempt: the last failure no longer says anything
        try:
            return await self._apply(workload)
        except Exception as e:
            self.reports.failed(await self._actual_or_missing(workload), e)
            raise
        finally:
            self.reports.end_pull(workload.uid)

    async def _actual_or_missing(self, workload: WorkloadSpec) -> WorkloadState:
        try:
            return await (await self._owner(workload.uid)).get(workload.uid)
        except PersysError:  # no container (NotFound), or Docker cannot tell: report none
            return WorkloadState(uid=workload.uid, name=workload.name, namespace=workload.namespace,
                                 node=self.node, state="missing", specHash=workload.spec_hash)

    async def _apply(self, workload: WorkloadSpec) -> WorkloadState:
        if workload.type == "compose":
            if await self.containers.exists(workload.uid):
                await self.containers.remove(workload.uid)
            return await self.compose.apply(workload)
        if self.compose.owns(workload.uid):
            await self.compose.remove(workload.uid)
        return await self.containers.apply(workload)

    async def start(self, uid: str) -> WorkloadState:
        self.reports.restarted(uid)
        return await (await self._owner(uid)).start(uid)

    async def stop(self, uid: str, timeout: float = 10.0) -> WorkloadState:
        return await (await self._owner(uid)).stop(uid, timeout)

    async def restart(self, uid: str) -> WorkloadState:
        self.reports.restarted(uid)
        return await (await self._owner(uid)).restart(uid)

    # -- probes (the prober's host) -------------------------------------------------------

    async def probe_targets(self, uid: str) -> list[Target]:
        return await (await self._owner(uid)).probe_targets(uid)

    async def exec_in(self, container_id: str, command: tuple[str, ...], timeout: float) -> tuple[int, str]:
        """Run ``command`` in a container, as ``docker exec`` does: (exit code, output ≤ 1 kB)."""
        assert self._docker is not None
        container = self._docker.containers.container(container_id)
        output = bytearray()
        with docker_call("exec", container_id[:12]):
            async with asyncio.timeout(timeout):
                execution = await container.exec(list(command), stdout=True, stderr=True)
                async with execution.start(detach=False) as stream:
                    while (message := await stream.read_out()) is not None:
                        output += message.data[:max(0, 4096 - len(output))]
                code = (await execution.inspect()).get("ExitCode")
        return (int(code) if code is not None else -1), clip(output.decode(errors="replace"))

    async def stop_unhealthy(self, target: Target, message: str, grace: float | None) -> None:
        """Stop the target's container, if it is still that run, explaining its exit with ``message``."""
        if not any(t.key == target.key for t in await self.probe_targets(target.uid)):
            return  # stopped, restarted or replaced since the probe failed: nothing to do
        assert self._docker is not None
        self.reports.unhealthy(target.uid, message)
        container = self._docker.containers.container(target.container_id)
        with docker_call("stop", target.container_id[:12]):
            await container.stop(t=int(self.stop_timeout if grace is None else grace))

    async def remove(self, uid: str) -> None:
        """Remove the workload; a uid known only by its failed launch is simply forgotten."""
        reported = self.reports.clear(uid)
        try:
            await (await self._owner(uid)).remove(uid)
        except NotFound:
            if not reported:
                raise
        self.hub.publish(WorkloadState(uid=uid, node=self.node, state="missing", message="removed"))

    async def get(self, uid: str) -> WorkloadState:
        """The actual state explained by a remembered failure, or the launch report of a uid with no container."""
        try:
            return self.reports.explain(await (await self._owner(uid)).get(uid))
        except NotFound:
            report = self.reports.get(uid)
            if report is None:
                raise
            return report

    async def list(self) -> list[WorkloadState]:
        return self.reports.merge(await self.containers.list() + await self.compose.list())

    async def logs(self, uid: str, tail: int = 50) -> str:
        return await (await self._owner(uid)).logs(uid, tail)

    async def follow_logs(self, uid: str, tail: int = 50) -> AsyncGenerator[str, None]:
        async with aclosing((await self._owner(uid)).follow_logs(uid, tail)) as chunks:
            async for chunk in chunks:
                yield chunk

    # -- events ---------------------------------------------------------------------------

    async def _follow_docker_events(self) -> None:
        backoff = Backoff(1.0, MAX_BACKOFF)
        first = True
        while True:
            try:
                if not first:
                    await self._republish()
                first = False
                await self._stream_events()
                backoff.reset()
            except Exception as e:  # the event stream must survive dockerd restarts
                log.warning("docker event stream broke", node=self.node, error=str(e))
            await backoff.sleep()

    async def _stream_events(self) -> None:
        events = DockerEvents(self._docker)  # type: ignore[no-untyped-call]
        subscriber = events.subscribe(create_task=False)  # type: ignore[no-untyped-call]
        filters = {"type": ["container"], **self.owner.filters(), "event": WATCHED_ACTIONS}
        runner = asyncio.create_task(events.run(filters=filters), name=f"agent-docker-events-run-{self.node}")
        try:
            while (event := await subscriber.get()) is not None:
                await self._on_event(event)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await events.stop()  # type: ignore[no-untyped-call]

    async def _on_event(self, event: dict[str, Any]) -> None:
        attributes = (event.get("Actor") or {}).get("Attributes") or {}  # the container's labels among them
        uid = attributes.get(LABEL_UID)
        if not uid or not self.owner.claims(attributes):
            return
        try:
            state = await self.get(uid)
        except NotFound:
            state = WorkloadState(uid=uid, name=attributes.get("persys.dev/name", ""),
                                  namespace=attributes.get("persys.dev/namespace", ""), node=self.node,
                                  state="missing", specHash=attributes.get("persys.dev/spec-hash", ""),
                                  message=f"container {event.get('Action')}")
        except PersysError as e:
            log.warning("cannot inspect after docker event", node=self.node, uid=uid, error=e.message)
            return
        if event.get("Action") == "oom" and "OOM" not in state.message:
            state.message = ("OOMKilled " + state.message).strip()
        self.hub.publish(state)

    async def _republish(self) -> None:
        for state in await self.list():
            self.hub.publish(state)
