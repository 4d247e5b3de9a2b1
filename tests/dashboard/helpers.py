"""What the dashboard tests share: a browser-like session logged in through the web flow, and bindings."""

from __future__ import annotations

from typing import Any

import aiohttp

from persys.client import ApiClient
from persys.security.tls import client_context
from tests.support.github import FakeGitHub, User


async def web_login(gateway_url: str, ca: Any, github: FakeGitHub, who: User) -> aiohttp.ClientSession:
    """A session with the cookies GitHub's web flow leaves, as a browser would have after logging in as ``who``."""
    github.web_user = who
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context(ca)),
                                    cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.get(gateway_url + "/auth/login?next=/ui/") as response:
        assert response.status == 200, await response.text()
        assert str(response.url).endswith("/ui/")
    return session


async def bind(admin: ApiClient, login: str, role: str) -> None:
    """A ClusterRoleBinding giving the GitHub user ``login`` ``role`` everywhere."""
    await admin.apply_raw({"apiVersion": "persys.dev/v1", "kind": "ClusterRoleBinding",
                           "metadata": {"name": f"{login}-{role}"},
                           "spec": {"role": role, "subjects": [{"kind": "github-user", "name": login}]}})
