"""The Website operator: a page (inline HTML or a file in a git repository) served by busybox httpd.

Each Website becomes one Workload it controls: httpd on the site's host port, the page written from
an environment variable, ``spec.service`` so the cluster DNS names it ``<site>.<namespace>.<zone>``.
The status says Pending until that Workload runs, then Ready, with the URL. Deleting the Website
deletes the Workload (garbage collection follows the owner reference ``ctx.ensure`` sets).

    persys operator run examples/operators/website/website.py
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

from persys.operator import Context, Operator, PermanentError, TemporaryError
from persys.resources import Resource

ZONE = os.environ.get("PERSYS_ZONE", "persys.local")
SERVE = 'mkdir -p /www && printf %s "$HTML" > /www/index.html && exec httpd -f -p "$PORT" -h /www'

op = Operator("website-operator")


@op.reconcile("web.example.com/v1", "Website", owns=["Workload"])
async def reconcile(site: Resource, ctx: Context) -> dict[str, Any]:
    workload = await ctx.ensure(workload_for(site, await page(site.spec)))
    running = workload.status.get("phase") == "Running"
    meta = site.metadata
    return {"phase": "Ready" if running else "Pending", "workload": workload.metadata.name,
            "url": f"http://{meta.name}.{meta.namespace}.{ZONE}:{site.spec['port']}/"}


def workload_for(site: Resource, html: str) -> dict[str, Any]:
    port = site.spec["port"]
    return {
        "apiVersion": "persys.dev/v1", "kind": "Workload",
        "metadata": {"name": f"{site.metadata.name}-site", "labels": {"web.example.com/website": site.metadata.name}},
        "spec": {"image": site.spec["image"], "command": ["sh", "-c", SERVE], "network": "host",
                 "env": {"HTML": html, "PORT": str(port)},
                 "ports": [{"name": "http", "containerPort": port, "hostPort": port}],
                 "service": {"name": site.metadata.name, "port": "http"}},
    }


async def page(spec: dict[str, Any]) -> str:
    if bool(spec.get("html")) == bool(spec.get("git")):
        raise PermanentError("give exactly one of spec.html and spec.git")
    return str(spec["html"]) if spec.get("html") else await from_git(spec["git"])


async def from_git(git: dict[str, str]) -> str:
    """The page at ``git.path`` of ``git.ref``; a failing clone is retried, a missing file is the user's to fix."""
    with tempfile.TemporaryDirectory(prefix="website-") as checkout:
        clone = await asyncio.create_subprocess_exec(
            "git", "clone", "--quiet", "--depth", "1", "--branch", git["ref"], "--", git["url"], checkout,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
        try:
            _, err = await asyncio.wait_for(clone.communicate(), 60)
        except TimeoutError:
            clone.kill()
            await clone.wait()
            raise TemporaryError(f"git clone {git['url']} timed out", delay=30) from None
        if clone.returncode:
            raise TemporaryError(f"git clone {git['url']} failed: {err.decode(errors='replace')[-300:]}", delay=30)
        return await asyncio.to_thread(read_page, Path(checkout), git)


def read_page(checkout: Path, git: dict[str, str]) -> str:
    root = checkout.resolve()
    file = (root / git["path"]).resolve()
    if not file.is_relative_to(root) or not file.is_file():
        raise PermanentError(f"{git['path']} is not a file of {git['url']} at {git['ref']}")
    return file.read_text(errors="replace")
