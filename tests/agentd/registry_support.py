"""A tiny, slow image registry on 127.0.0.1 so that tests watch a real ``docker pull`` progress.

No registry image exists on this machine and tests never reach an external one, so this
serves the Registry HTTP API v2 (the few read routes ``docker pull`` uses) for one image
exported from the local dockerd with ``docker save``. Docker treats 127.0.0.0/8 as an
insecure registry and pulls over plain HTTP. Blobs are sent in small, delayed chunks so the
pull lasts a few seconds and Docker's progress lines reach the agent.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import secrets
import tarfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from persys.store.server import free_port

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CHUNK = 32 * 1024


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def _saved(image: str) -> bytes:
    process = await asyncio.create_subprocess_exec("docker", "save", image, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, f"docker save {image} failed"
    return out


def _blobs_and_manifest(saved: bytes) -> tuple[dict[str, bytes], bytes]:
    """Registry blobs (config, gzipped layers) and the schema 2 manifest of one ``docker save`` archive."""
    with tarfile.open(fileobj=io.BytesIO(saved)) as archive:
        def read(name: str) -> bytes:
            member = archive.extractfile(name)
            assert member is not None, name
            return member.read()

        entry = json.loads(read("manifest.json"))[0]
        # a new image id, or Docker would recognise the image it already has and download nothing
        config = json.dumps({**json.loads(read(entry["Config"])), "comment": secrets.token_hex(8)}).encode()
        layers = [gzip.compress(read(name), compresslevel=1) for name in entry["Layers"]]
    blobs = {_digest(blob): blob for blob in (config, *layers)}
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                           "size": len(config), "digest": _digest(config)},
                "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                            "size": len(layer), "digest": _digest(layer)} for layer in layers]}
    return blobs, json.dumps(manifest).encode()


def _app(blobs: dict[str, bytes], manifest: bytes, delay: float) -> web.Application:
    async def root(request: web.Request) -> web.Response:
        return web.json_response({})

    async def manifests(request: web.Request) -> web.Response:
        return web.Response(body=manifest, headers={"Content-Type": MANIFEST_TYPE,
                                                    "Docker-Content-Digest": _digest(manifest)})

    async def blob(request: web.Request) -> web.StreamResponse:
        data = blobs.get(request.match_info["digest"])
        if data is None:
            raise web.HTTPNotFound()
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream",
                                               "Docker-Content-Digest": request.match_info["digest"]})
        response.content_length = len(data)
        await response.prepare(request)
        if request.method != "HEAD":
            for start in range(0, len(data), CHUNK):
                await response.write(data[start:start + CHUNK])
                await asyncio.sleep(delay)
        return response

    app = web.Application()
    app.add_routes([web.get("/v2/", root), web.get("/v2/{name:.+}/manifests/{ref}", manifests),
                    web.get("/v2/{name:.+}/blobs/{digest}", blob)])
    return app


@asynccontextmanager
async def slow_registry(source: str, repository: str, delay: float = 0.05) -> AsyncIterator[str]:
    """Serve local image ``source`` as ``127.0.0.1:<port>/<repository>:<any tag>``; yields ``127.0.0.1:<port>``."""
    blobs, manifest = _blobs_and_manifest(await _saved(source))
    runner = web.AppRunner(_app(blobs, manifest, delay), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()
