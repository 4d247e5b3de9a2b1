"""Container workloads on Docker: one container ``persys-<uid>`` per workload, found by its labels.

Nothing is kept in memory: every answer comes from Docker, so an agent that restarts knows
everything its predecessor knew (same container ids, nothing relaunched). Only the containers
its ``Owner`` claims exist for it: another cluster's node of the same name is invisible. An
image Docker does not have is pulled before the container is created; the pull's progress is
reported as state ``pulling`` for the uid, and a failed pull fails the apply with
``ImagePullFailed`` carrying the registry's own error.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import aiodocker
from aiodocker.containers import DockerContainer

from persys.agentd.dockerapi import (
    LABEL_COMPOSE_PROJECT,
    LABEL_HASH,
    LABEL_NAME,
    LABEL_NAMESPACE,
    LABEL_UID,
    Owner,
    container_name,
    docker_call,
    state_from_inspect,
)
from persys.agentd.events import LaunchReports
from persys.agentd.prober import ProbeResults, Target, gated
from persys.agentd.runtime import ImagePullFailed, WorkloadSpec, WorkloadState
from persys.errors import Conflict, NotFound, PersysError, RuntimeFailure
from persys.observability.logging import get_logger
from persys.resources.probes import parse_probes, probes_of
from persys.resources.quantity import parse_cpu, parse_memory

PULL_TIMEOUT = 120.0
LABEL_PROBES = "persys.dev/probes"  # the container's probes as JSON: an agent that restarts probes it again
log = get_logger("agent")


def container_config(workload: WorkloadSpec, node: str, cluster: str = "") -> dict[str, Any]:
    """The Docker create body for a container workload of ``node`` in ``cluster``."""
    spec = workload.spec
    network = str(spec.get("network") or "host")
    host: dict[str, Any] = {"NetworkMode": network, "RestartPolicy": {"Name": "no"}}
    resources = spec.get("resources") or {}
    if resources.get("cpu"):
        host["NanoCpus"] = parse_cpu(resources["cpu"]) * 1_000_000
    if resources.get("memory"):
        host["Memory"] = parse_memory(resources["memory"])
    config: dict[str, Any] = {
        "Image": spec["image"],
        "Env": [f"{key}={value}" for key, value in sorted((spec.get("env") or {}).items())],
        "Labels": {LABEL_UID: workload.uid, LABEL_NAME: workload.name, LABEL_NAMESPACE: workload.namespace,
                   **Owner(node, cluster).labels(), LABEL_HASH: workload.spec_hash},
        "HostConfig": host,
    }
    probes = probes_of(spec).get("")
    if probes:
        config["Labels"][LABEL_PROBES] = json.dumps(probes, sort_keys=True, separators=(",", ":"))
    # Kubernetes semantics: command replaces the image's entrypoint, args its default command
    if spec.get("command"):
        config["Entrypoint"] = list(spec["command"])
        config["Cmd"] = list(spec.get("args") or [])
    elif spec.get("args"):
        config["Cmd"] = list(spec["args"])
    if spec.get("workingDir"):
        config["WorkingDir"] = spec["workingDir"]
    if network == "bridge" and spec.get("ports"):
        # only a bridge network maps ports; with host networking the container already owns them
        config["ExposedPorts"] = {f"{p['containerPort']}/{p.get('protocol', 'tcp')}": {} for p in spec["ports"]}
        host["PortBindings"] = {
            f"{p['containerPort']}/{p.get('protocol', 'tcp')}": [{"HostIp": "127.0.0.1",
                                                                   "HostPort": str(p.get("hostPort") or "")}]
            for p in spec["ports"]}
    return config


def _probes(info: dict[str, Any]) -> dict[str, Any]:
    """The probes an inspected container was created with ({} without, or with a label that is not JSON)."""
    raw = ((info.get("Config") or {}).get("Labels") or {}).get(LABEL_PROBES)
    try:
        probes = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return probes if isinstance(probes, dict) else {}


def pull_progress(line: dict[str, Any]) -> str:
    """One line of Docker's pull stream as text, e.g. ``a1b2c3: Downloading 0.7/2.1 MB``."""
    text = str(line.get("status") or "")
    detail = line.get("progressDetail") or {}
    if detail.get("total"):
        text += f" {detail.get('current', 0) / 1e6:.1f}/{detail['total'] / 1e6:.1f} MB"
    return f"{line['id']}: {text}" if line.get("id") else text


class ContainerRuntime:
    """Runtime for ``type: container`` workloads on one node's dockerd."""

    name = "docker"

    def __init__(self, owner: Owner, docker: aiodocker.Docker, reports: LaunchReports, stop_timeout: int = 10,
                 probe_results: ProbeResults | None = None) -> None:
        self.owner = owner
        self.probe_results = probe_results or ProbeResults()
        self.node = owner.node
        self.docker = docker
        self.reports = reports
        self.stop_timeout = stop_timeout

    async def _container(self, uid: str) -> tuple[DockerContainer, dict[str, Any]]:
        name = container_name(uid)
        try:
            with docker_call("inspect", name):
                container = await self.docker.containers.get(name)
                info = container._container
        except NotFound as e:
            raise NotFound(f"workload {uid} not found on node {self.node}") from e
        labels = (info.get("Config") or {}).get("Labels") or {}
        if not self.owner.claims(labels) or labels.get(LABEL_UID) != uid:
            raise NotFound(f"workload {uid} not found on node {self.node}")
        return container, info

    async def exists(self, uid: str) -> bool:
        try:
            await self._container(uid)
        except NotFound:
            return False
        return True

    async def get(self, uid: str) -> WorkloadState:
        _, info = await self._container(uid)
        state = state_from_inspect(info, self.node)
        probes = _probes(info)
        return self.probe_results.judge(state, [("", f"{state.containerID}@{state.startedAt}", gated(probes))])

    async def probe_targets(self, uid: str) -> list[Target]:
        """The container of ``uid`` if it runs and has probes."""
        _, info = await self._container(uid)
        state, probes = state_from_inspect(info, self.node), _probes(info)
        if state.state != "running" or not probes:
            return []
        return [Target(uid, "", state.containerID, str(state.startedAt), parse_probes(probes))]

    async def list(self) -> list[WorkloadState]:
        with docker_call("list"):
            found = await self.docker.containers.list(all=True, filters=self.owner.filters())
        states = []
        for summary in found:
            labels = summary._container.get("Labels") or {}
            if LABEL_COMPOSE_PROJECT in labels or LABEL_UID not in labels or not self.owner.claims(labels):
                continue
            try:
                states.append(await self.get(labels[LABEL_UID]))
            except NotFound:
                continue  # removed between list and inspect
        return states

    async def ensure_image(self, workload: WorkloadSpec) -> None:
        """Pull the workload's image unless Docker has it; raises ImagePullFailed with Docker's reason."""
        image = str(workload.spec["image"])
        try:
            with docker_call("image_inspect", image):
                await self.docker.images.inspect(image)
            return
        except PersysError:
            pass  # absent, or a reference Docker cannot parse: the pull answers with the reason
        self.reports.pulling(workload, image, "started")
        try:
            with docker_call("pull", image):
                await asyncio.wait_for(self._pull(workload, image), PULL_TIMEOUT)
        except PersysError as e:
            log.warning("pull failed", node=self.node, image=image, error=e.message)
            raise ImagePullFailed(e.message) from e
        except TimeoutError as e:
            raise ImagePullFailed(f"docker pull {image}: timed out after {PULL_TIMEOUT:g}s") from e

    async def _pull(self, workload: WorkloadSpec, image: str) -> None:
        progress: Any = self.docker.images.pull(image, stream=True)  # an async generator of JSON lines
        async with aclosing(progress) as lines:
            async for line in lines:
                self.reports.pulling(workload, image, pull_progress(line))

    async def _create(self, workload: WorkloadSpec, config: dict[str, Any], name: str) -> DockerContainer:
        """Create at once (the image is almost always there); pull only when Docker says it is not.

        A reference Docker cannot parse is the image's fault, not the container's: ImagePullFailed.
        """
        try:
            with docker_call("create", name):
                return await self.docker.containers.create(config, name=name)
        except NotFound:
            await self.ensure_image(workload)
        except RuntimeFailure as e:
            if "invalid reference format" in e.message:
                raise ImagePullFailed(e.message) from e
            raise
        with docker_call("create", name):
            return await self.docker.containers.create(config, name=name)

    async def apply(self, workload: WorkloadSpec) -> WorkloadState:
        """Create and start the container; idempotent by uid and spec hash.

        Create comes first (most applies launch a new container): only when Docker answers that the
        name is taken is the existing container inspected, kept, started or replaced.
        """
        config = container_config(workload, self.node, self.owner.cluster)
        name = container_name(workload.uid)
        try:
            container = await self._create(workload, config, name)
        except Conflict:
            current = await self._reuse(workload)
            if current is not None:
                return current
            container = await self._create(workload, config, name)
        if workload.wants_running:
            with docker_call("start", name):
                await container.start()
        # what was just done, not inspected again: the Docker event of the start reports the state as
        # inspected, and a second inspect here would only queue behind that one at dockerd
        return WorkloadState(uid=workload.uid, name=workload.name, namespace=workload.namespace,
                             node=self.node, containerID=container.id,
                             state="running" if workload.wants_running else "created", specHash=workload.spec_hash)

    async def _reuse(self, workload: WorkloadSpec) -> WorkloadState | None:
        """The container of the same spec, started if it should run; None once one of another spec is gone."""
        _, info = await self._container(workload.uid)
        current = state_from_inspect(info, self.node)
        if current.specHash == workload.spec_hash:
            if current.state == "running" or not workload.wants_running:
                return current
            return await self.start(workload.uid)
        log.info("spec changed, replacing container", node=self.node, uid=workload.uid,
                 old=current.specHash, new=workload.spec_hash)
        await self.remove(workload.uid)
        return None

    async def start(self, uid: str) -> WorkloadState:
        container, info = await self._container(uid)
        if (info.get("State") or {}).get("Status") != "running":
            with docker_call("start", container_name(uid)):
                await container.start()
        return await self.get(uid)

    async def stop(self, uid: str, timeout: float = 10.0) -> WorkloadState:
        container, _ = await self._container(uid)
        with docker_call("stop", container_name(uid)):
            await container.stop(t=int(timeout))
        return await self.get(uid)

    async def restart(self, uid: str) -> WorkloadState:
        container, _ = await self._container(uid)
        with docker_call("restart", container_name(uid)):
            await container.restart(t=self.stop_timeout)
        return await self.get(uid)

    async def remove(self, uid: str) -> None:
        container, _ = await self._container(uid)
        try:
            with docker_call("remove", container_name(uid)):
                await container.delete(force=True, v=True)
        except NotFound:
            pass  # already gone: removal is idempotent

    async def logs(self, uid: str, tail: int = 50) -> str:
        container, _ = await self._container(uid)
        with docker_call("logs", container_name(uid)):
            lines = await container.log(stdout=True, stderr=True, tail=tail, timeout=30.0)
        return "".join(lines)

    async def follow_logs(self, uid: str, tail: int = 50) -> AsyncGenerator[str, None]:
        container, _ = await self._container(uid)
        logs: Any = container.log(stdout=True, stderr=True, follow=True, tail=tail)  # an async generator
        async with aclosing(logs) as stream:
            async for chunk in stream:
                yield chunk
