"""End to end: the Website example operator on a whole cluster (real etcd, dockerd, DNS).

Apply the definition and a Website, wait until its page answers on its port and its name resolves,
change the page (inline, then from a git repository), delete the Website: its Workload and
container go with it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import aiohttp
import dns.asyncresolver

from persys.client import ApiClient
from persys.errors import NotFound
from persys.operator.loading import load_operator
from persys.store.server import free_port
from tests.operator.upcluster import EXAMPLES, UpCluster, up_cluster
from tests.support.eventually import eventually

HERE = EXAMPLES / "website"


async def page(url: str) -> str:
    try:
        async with aiohttp.ClientSession() as session, \
                session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
            return await resp.text() if resp.status == 200 else ""
    except (aiohttp.ClientError, TimeoutError):
        return ""


async def ready(client: ApiClient, name: str) -> dict[str, str] | None:
    site = await client.get("Website", name)
    return site.status if site.status.get("phase") == "Ready" else None


async def resolve(cluster: UpCluster, name: str) -> list[str]:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = ["127.0.0.1"], cluster.config.dns_port
    try:
        answer = await resolver.resolve(name, "A", lifetime=2)
    except dns.exception.DNSException:
        return []
    return [str(record) for record in answer]


def git_repo(path: Path, html: str) -> str:
    """A local repository whose main branch holds index.html; its file:// URL."""
    path.mkdir()
    (path / "index.html").write_text(html)
    for args in (["init", "-q", "-b", "main"], ["add", "index.html"],
                 ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "page"]):
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True, timeout=30)
    return path.absolute().as_uri()


async def test_website_end_to_end(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "site", "<h1>From git</h1>")
    async with up_cluster(tmp_path) as cluster:
        await cluster.apply_file(HERE / "definition.yaml")  # first: the operator waits until its kind is served
        async with cluster.operator(load_operator(str(HERE / "website.py"))):
            await converge(cluster, free_port(), repo)


async def converge(cluster: UpCluster, port: int, repo: str) -> None:
    admin, url = cluster.admin, f"http://127.0.0.1:{port}/"
    await cluster.apply_file(HERE / "website.yaml", port=port)
    status = await eventually(lambda: ready(admin, "hello"), what="the Website Ready", timeout=90)
    assert status["url"] == f"http://hello.default.persys.local:{port}/"
    assert status["workload"] == "hello-site"
    assert await eventually(lambda: page(url), what="the page", timeout=60) == "<h1>Hello from Persys</h1>"
    name = "hello.default.persys.local"
    assert await eventually(lambda: resolve(cluster, name), what="the DNS name") == ["127.0.0.1"]
    workload = await admin.get("Workload", "hello-site")
    assert workload.metadata.ownerReferences[0].kind == "Website"

    await admin.patch("Website", "hello", {"spec": {"html": "<h1>Changed</h1>"}})
    await eventually(lambda: _serves(url, "<h1>Changed</h1>"), what="the changed page", timeout=90)
    await admin.patch("Website", "hello", {"spec": {"html": None, "git": {"url": repo}}})
    await eventually(lambda: _serves(url, "<h1>From git</h1>"), what="the page from git", timeout=90)

    await admin.delete("Website", "hello")
    await eventually(lambda: _gone(admin, "Workload", "hello-site"), what="the Workload deleted", timeout=60)
    await eventually(lambda: _serves(url, ""), what="the site down", timeout=60)


async def _serves(url: str, wanted: str) -> bool:
    return await page(url) == wanted


async def _gone(client: ApiClient, kind: str, name: str) -> bool:
    try:
        await client.get(kind, name)
    except NotFound:
        return True
    return False


