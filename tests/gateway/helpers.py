"""What the gateway tests share: a gateway's config, a GitHub login through it, raw requests to it."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from persys.client.gateway import GatewayClient
from persys.gateway.config import GatewayConfig, GitHubSettings
from persys.gateway.server import Gateway
from persys.security import pki
from persys.security.tls import client_context
from tests.support.cluster import RunningApi
from tests.support.eventually import eventually
from tests.support.github import FakeGitHub, as_settings, user

OCTOCAT = user("octocat", orgs=["acme"], teams=[("acme", "ops")])


def gateway_config(running: RunningApi, github: FakeGitHub, **changes: object) -> GatewayConfig:
    pki.issue(running.pki, "gateway", "gateway")
    settings = {"home": running.pki.home, "servers": (running.secure_url,), "listen": ("127.0.0.1", 0),
                "github": GitHubSettings(**as_settings(github)), **changes}
    return GatewayConfig(**settings)  # type: ignore[arg-type]


def client(gateway: Gateway, running: RunningApi) -> GatewayClient:
    return GatewayClient(gateway.url, ca=running.pki.ca_cert)


async def post(gateway: Gateway, running: RunningApi, path: str, form: dict[str, str] | None = None,
               token: str = "") -> tuple[int, Any]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context(running.pki.ca_cert))) as s, \
            s.post(gateway.url + path, data=form, headers={"Authorization": f"Bearer {token}"} if token else {}) as r:
        return r.status, await r.json(content_type=None)


async def login(gateway: Gateway, running: RunningApi, github: FakeGitHub, who: Any = OCTOCAT) -> dict[str, Any]:
    """A whole device flow, approved as ``who`` as soon as the code is shown."""
    codes: list[str] = []

    async def approve() -> None:
        await eventually(lambda: codes, what="the user code shown")
        github.approve(codes[0], who)

    approving = asyncio.create_task(approve())
    tokens = await client(gateway, running).device_login(lambda start: codes.append(start["user_code"]))
    await approving
    return tokens
