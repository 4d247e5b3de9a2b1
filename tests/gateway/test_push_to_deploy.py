"""Push to deploy, end to end: a real git repository, a signed push to the gateway of a whole cluster,
and a real docker-compose app (built from the repository) serving the new commit on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import aiohttp
import pytest

from persys.errors import PersysError
from persys.gateway.webhooks import signature
from persys.security.tls import client_context
from persys.store.server import free_port
from tests.operator.upcluster import UpCluster, up_cluster
from tests.support.eventually import eventually
from tests.support.gitrepo import commit, compose_app_repo

SECRET = "push-secret"


async def page(port: int) -> str:
    try:
        async with aiohttp.ClientSession() as session, \
                session.get(f"http://127.0.0.1:{port}/", timeout=aiohttp.ClientTimeout(total=2)) as resp:
            return await resp.text() if resp.status == 200 else ""
    except (aiohttp.ClientError, TimeoutError):
        return ""


async def deployed(cluster: UpCluster, revision: str) -> bool:
    shop = await cluster.admin.get("Workload", "shop")
    return shop.status.get("deployedRevision") == revision and shop.status.get("phase") == "Running"


async def push(cluster: UpCluster, gateway_url: str, repo_url: str, after: str) -> tuple[int, dict[str, object]]:
    payload = json.dumps({"ref": "refs/heads/main", "after": after, "repository": {
        "full_name": "acme/shop", "clone_url": repo_url, "default_branch": "main"}}).encode()
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()),
               "X-Hub-Signature-256": signature(SECRET, payload), "Content-Type": "application/json"}
    ssl = client_context(cluster.paths.ca_cert)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl)) as session, \
            session.post(f"{gateway_url}/webhooks/github", data=payload, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_a_signed_push_redeploys_the_compose_app_at_the_new_commit(tmp_path: Path) -> None:
    port, repo = free_port(), tmp_path / "shop"
    compose_app_repo(repo, port)
    first = commit(repo, "one")
    uid = ""
    try:
        async with up_cluster(tmp_path, gateway=True) as cluster:
            gateway_url = f"https://127.0.0.1:{cluster.config.gateway_port}"
            await cluster.admin.apply_raw({
                "apiVersion": "persys.dev/v1", "kind": "Secret", "metadata": {
                    "name": "webhook-acme-shop", "namespace": "persys-gateway",
                    "labels": {"persys.dev/webhook": "github"}},
                "data": {"repository": "acme/shop", "secret": SECRET, "namespaces": "default"}})
            created, _ = await cluster.admin.apply_raw({
                "apiVersion": "persys.dev/v1", "kind": "Workload", "metadata": {"name": "shop"},
                "spec": {"type": "compose", "compose": {"repo": repo.as_uri(), "ref": "main"}}})
            uid = created.metadata.uid
            await eventually(lambda: deployed(cluster, first), what="the first commit Running", timeout=180)
            assert await eventually(lambda: page(port), what="the page") == "one"

            second = commit(repo, "two")
            status, body = await push(cluster, gateway_url, repo.as_uri(), second)
            assert (status, body["updated"]) == (200, ["default/shop"]), body
            shop = await cluster.admin.get("Workload", "shop")
            assert shop.spec["compose"]["revision"] == second  # declarative: the spec says which commit
            await eventually(lambda: deployed(cluster, second), what="the pushed commit Running", timeout=180)
            assert await eventually(lambda: _serves(port, "two"), what="the new page", timeout=60)

            status, body = await push(cluster, gateway_url, repo.as_uri(), "f" * 40)  # a commit that is not there
            assert status == 200
            failed = await eventually(lambda: _failure(cluster), what="the launch failure shown", timeout=120)
            assert "f" * 40 in failed
    finally:
        if uid:
            _remove_images(f"persys-{uid}")


async def _serves(port: int, wanted: str) -> bool:
    return await page(port) == wanted


async def _failure(cluster: UpCluster) -> str:
    shop = await cluster.admin.get("Workload", "shop")
    message = str(shop.status.get("message") or "") + str(shop.status.get("containerMessage") or "")
    return message if "not in the repository" in message else ""


def _remove_images(project: str) -> None:
    """The images docker-compose built for ``project`` (named ``<project>_<service>``)."""
    listed = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True,
                            text=True, timeout=60).stdout.split()
    for image in (i for i in listed if i.startswith(f"{project}_")):
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True, timeout=60)


@pytest.fixture(autouse=True)
def _docker_compose_available() -> None:
    try:
        subprocess.run(["docker-compose", "version"], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.CalledProcessError) as e:
        raise PersysError(f"docker-compose is needed (make setup installs it): {e}") from e
