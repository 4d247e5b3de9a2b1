"""Compose workloads: a git checkout run as docker-compose project ``persys-<uid>``.

Each workload owns ``<state-dir>/compose/<uid>/``: ``meta.json`` (who it is, its spec hash,
where its compose file is), ``repo/`` (the checkout) and ``override.yaml``, which adds the
``persys.dev/*`` labels (the cluster's among them) to every service so that Docker's event
stream and label filters see compose containers like any other, and so that the project's
containers are claimed by this cluster's node alone. State is aggregated from the project's
containers (label ``com.docker.compose.project``). docker-compose runs as an asyncio subprocess
with a timeout; the git token never reaches it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import aiodocker
import yaml

from persys.agentd.dockerapi import (
    LABEL_COMPOSE_PROJECT,
    LABEL_HASH,
    LABEL_NAME,
    LABEL_NAMESPACE,
    LABEL_UID,
    Owner,
    docker_call,
    state_from_inspect,
)
from persys.agentd.git import GitFetcher
from persys.agentd.prober import ProbeResults, Target, gated
from persys.agentd.runtime import WorkloadSpec, WorkloadState
from persys.errors import BadRequest, NotFound, RuntimeFailure
from persys.resources.probes import parse_probes, probes_of

COMPOSE = os.environ.get("PERSYS_DOCKER_COMPOSE", "docker-compose")
LABEL_SERVICE = "com.docker.compose.service"
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
UP_TIMEOUT = 300.0
BUILD_TIMEOUT = 900.0
CALL_TIMEOUT = 120.0


def project_name(uid: str) -> str:
    return f"persys-{uid}".lower()


def inside(root: Path, relative: str, what: str) -> Path:
    """``root/relative`` resolved, refusing anything that escapes ``root`` (``..``, symlinks)."""
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise BadRequest(f"{what} {relative!r} escapes the repository")
    return target


def find_compose_file(workdir: Path, repo: Path, name: str) -> Path:
    if name:
        found = (workdir / name).resolve()
        if not found.is_relative_to(repo.resolve()):
            raise BadRequest(f"spec.compose.file {name!r} escapes the repository")
        if not found.is_file():
            raise BadRequest(f"spec.compose.file {name!r} not found in the repository")
        return found
    for candidate in COMPOSE_FILES:
        if (workdir / candidate).is_file():
            return workdir / candidate
    raise BadRequest(f"no compose file ({', '.join(COMPOSE_FILES)}) in {workdir.relative_to(repo) or '.'}")


class ComposeRuntime:
    """Runtime for ``type: compose`` workloads on one node."""

    def __init__(self, owner: Owner, docker: aiodocker.Docker, root: Path, stop_timeout: int = 10,
                 probe_results: ProbeResults | None = None) -> None:
        self.owner = owner
        self.probe_results = probe_results or ProbeResults()
        self.node = owner.node
        self.docker = docker
        self.root = root
        self.stop_timeout = stop_timeout
        self.git = GitFetcher(root)

    def _dir(self, uid: str) -> Path:
        if "/" in uid or uid.startswith("."):
            raise BadRequest(f"invalid uid {uid!r}")
        return self.root / uid

    def owns(self, uid: str) -> bool:
        try:
            return (self._dir(uid) / "meta.json").is_file()
        except BadRequest:
            return False

    def _meta(self, uid: str) -> dict[str, Any]:
        if not self.owns(uid):
            raise NotFound(f"workload {uid} not found on node {self.node}")
        return dict(json.loads((self._dir(uid) / "meta.json").read_text()))

    # -- docker-compose -------------------------------------------------------------------

    def _args(self, meta: dict[str, Any]) -> list[str]:
        return [COMPOSE, "--no-ansi", "-p", project_name(meta["uid"]), "-f", meta["file"],
                "-f", str(self._dir(meta["uid"]) / "override.yaml")]

    def _env(self, meta: dict[str, Any]) -> dict[str, str]:
        keep = ("PATH", "HOME", "LANG", "DOCKER_HOST", "DOCKER_CONFIG", "TMPDIR")
        env = {key: value for key, value in os.environ.items() if key in keep}
        env.update({str(k): str(v) for k, v in (meta.get("env") or {}).items()})
        return env

    async def _compose(self, meta: dict[str, Any], *args: str, timeout: float = CALL_TIMEOUT) -> str:
        command = [*self._args(meta), *args]
        with docker_call(f"compose_{args[0]}", project_name(meta["uid"])):
            process = await asyncio.create_subprocess_exec(
                *command, cwd=meta["workdir"], env=self._env(meta), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            try:
                stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
            except TimeoutError as e:
                process.kill()
                await process.wait()
                raise RuntimeFailure(f"docker-compose {args[0]} timed out after {timeout:g}s") from e
        if process.returncode != 0:
            lines = stderr.decode(errors="replace").strip().splitlines()
            raise RuntimeFailure(f"docker-compose {args[0]} failed: {' '.join(lines[-4:])}")
        return stdout.decode(errors="replace")

    # -- lifecycle ------------------------------------------------------------------------

    async def _checkout(self, workload: WorkloadSpec) -> dict[str, Any]:
        """Fetch the repository and write meta.json and override.yaml; returns the meta."""
        compose = workload.spec["compose"]
        auth = compose.get("auth") or {}
        home = self._dir(workload.uid)
        repo = home / "repo"
        revision = await self.git.clone(str(compose.get("repo") or ""), str(compose.get("ref") or ""), repo,
                                        revision=str(compose.get("revision") or ""),
                                        username=str(auth.get("username") or ""), token=str(auth.get("token") or ""))
        workdir = inside(repo, str(compose.get("path") or "."), "spec.compose.path")
        if not workdir.is_dir():
            raise BadRequest(f"spec.compose.path {compose.get('path')!r} is not a directory in the repository")
        file = find_compose_file(workdir, repo, str(compose.get("file") or ""))
        document = yaml.safe_load(file.read_text()) or {}
        services = document.get("services") if isinstance(document, dict) else None
        if not isinstance(services, dict) or not services:
            raise BadRequest(f"{file.name} defines no services")
        probes = probes_of(workload.spec)
        for service in sorted(set(probes) - set(services)):
            raise BadRequest(f"spec.compose.services.{service}: {file.name} has no service {service!r}")
        labels = {LABEL_UID: workload.uid, LABEL_NAME: workload.name, LABEL_NAMESPACE: workload.namespace,
                  **self.owner.labels(), LABEL_HASH: workload.spec_hash}
        override: dict[str, Any] = {"services": {name: {"labels": labels} for name in services}}
        if "version" in document:
            override["version"] = document["version"]
        (home / "override.yaml").write_text(yaml.safe_dump(override))
        meta = {"uid": workload.uid, "name": workload.name, "namespace": workload.namespace,
                "specHash": workload.spec_hash, "revision": revision, "file": str(file), "workdir": str(workdir),
                "env": workload.spec.get("env") or {}, "build": compose.get("build") or "auto",
                "builds": any(isinstance(s, dict) and "build" in s for s in services.values()), "probes": probes}
        (home / "meta.json").write_text(json.dumps(meta))
        return meta

    async def apply(self, workload: WorkloadSpec) -> WorkloadState:
        if self.owns(workload.uid):
            meta = self._meta(workload.uid)
            if meta["specHash"] == workload.spec_hash:
                current = await self.get(workload.uid)
                if current.state == "running" or not workload.wants_running:
                    return current
                await self._up(meta, fresh=False)
                return await self.get(workload.uid)
            await self.remove(workload.uid)
        try:
            meta = await self._checkout(workload)
        except BaseException:
            shutil.rmtree(self._dir(workload.uid), ignore_errors=True)
            raise
        if workload.wants_running:
            await self._up(meta, fresh=True)
        else:
            await self._compose(meta, "up", "--no-start", timeout=UP_TIMEOUT)
        return await self.get(workload.uid)

    async def _up(self, meta: dict[str, Any], *, fresh: bool) -> None:
        build = meta["build"]
        if meta["builds"] and (build == "always" or (build == "auto" and fresh)):
            await self._compose(meta, "build", timeout=BUILD_TIMEOUT)
        await self._compose(meta, "up", "-d", "--no-build", "--remove-orphans", timeout=UP_TIMEOUT)

    async def start(self, uid: str) -> WorkloadState:
        await self._compose(self._meta(uid), "start")
        return await self.get(uid)

    async def stop(self, uid: str, timeout: float = 10.0) -> WorkloadState:
        await self._compose(self._meta(uid), "stop", "-t", str(int(timeout)))
        return await self.get(uid)

    async def restart(self, uid: str) -> WorkloadState:
        await self._compose(self._meta(uid), "restart", "-t", str(self.stop_timeout))
        return await self.get(uid)

    async def remove(self, uid: str) -> None:
        meta = self._meta(uid)
        try:
            # --rmi local: the images built for the app go with it (a redeploy builds the new commit's)
            await self._compose(meta, "down", "--remove-orphans", "-v", "--rmi", "local", "-t", str(self.stop_timeout))
        finally:
            for container in await self._containers(uid):  # whatever down could not remove
                with docker_call("remove", container.id):
                    await container.delete(force=True)
            shutil.rmtree(self._dir(uid), ignore_errors=True)

    # -- state ----------------------------------------------------------------------------

    async def _containers(self, uid: str) -> list[Any]:
        """The project's containers that this node of this cluster claims."""
        with docker_call("list", project_name(uid)):
            found = await self.docker.containers.list(
                all=True, filters={"label": [f"{LABEL_COMPOSE_PROJECT}={project_name(uid)}"]})
        return [c for c in found if self.owner.claims(c._container.get("Labels") or {})]

    async def _services(self, uid: str) -> tuple[dict[str, Any], list[tuple[str, WorkloadState]]]:
        """The meta of ``uid`` and (service, state) of each of its containers."""
        meta = self._meta(uid)
        found = []
        for container in await self._containers(uid):
            try:
                with docker_call("inspect", container.id):
                    info = await container.show()
            except NotFound:
                continue
            service = str(((info.get("Config") or {}).get("Labels") or {}).get(LABEL_SERVICE, ""))
            found.append((service, state_from_inspect(info, self.node)))
        return meta, found

    async def get(self, uid: str) -> WorkloadState:
        meta, found = await self._services(uid)
        probes = meta.get("probes") or {}
        state = aggregate(meta, [s for _, s in found], [svc for svc, _ in found], self.node)
        return self.probe_results.judge(state, [(svc, f"{s.containerID}@{s.startedAt}", gated(probes.get(svc) or {}))
                                                for svc, s in found if s.state == "running"])

    async def probe_targets(self, uid: str) -> list[Target]:
        """The running containers of ``uid`` whose service has probes."""
        meta, found = await self._services(uid)
        probes = meta.get("probes") or {}
        return [Target(uid, svc, s.containerID, str(s.startedAt), parse_probes(probes[svc]))
                for svc, s in found if s.state == "running" and probes.get(svc)]

    async def list(self) -> list[WorkloadState]:
        if not self.root.is_dir():
            return []
        return [await self.get(d.name) for d in sorted(self.root.iterdir()) if self.owns(d.name)]

    async def logs(self, uid: str, tail: int = 50) -> str:
        return await self._compose(self._meta(uid), "logs", "--no-color", f"--tail={tail}")

    async def follow_logs(self, uid: str, tail: int = 50) -> AsyncGenerator[str, None]:
        meta = self._meta(uid)
        process = await asyncio.create_subprocess_exec(
            *self._args(meta), "logs", "--no-color", "-f", f"--tail={tail}", cwd=meta["workdir"],
            env=self._env(meta), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        assert process.stdout is not None
        try:
            async for line in process.stdout:
                yield line.decode(errors="replace")
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()


def aggregate(meta: dict[str, Any], states: list[WorkloadState], services: list[str], node: str) -> WorkloadState:
    """One state for a project: running when every service runs (or finished with 0), else why not."""
    result = WorkloadState(uid=meta["uid"], name=meta["name"], namespace=meta["namespace"], node=node,
                           specHash=meta["specHash"], revision=str(meta.get("revision") or ""))
    if not states:
        result.state, result.message = "created", "no containers"
        return result
    pairs = sorted(zip(services, states, strict=True), key=lambda p: p[0])
    result.containerID = pairs[0][1].containerID
    kinds = {s.state for s in states}
    failed = [(svc, s) for svc, s in pairs if s.state in ("exited", "dead") and s.exitCode != 0]
    if "restarting" in kinds:
        result.state = "restarting"
    elif "running" in kinds and not failed:
        result.state = "running"
    elif kinds == {"created"}:
        result.state = "created"
    else:
        result.state = "exited"
        result.exitCode = failed[0][1].exitCode if failed else 0
        finished = [s.finishedAt for s in states if s.finishedAt]
        result.finishedAt = max(finished) if finished else None
    started = [s.startedAt for s in states if s.startedAt]
    result.startedAt = min(started) if started else None
    result.message = ", ".join(f"{svc}: {s.state}" + (f" ({s.exitCode})" if s.exitCode else "") for svc, s in pairs)
    return result
