"""The gateway in front of real API servers: requests as the logged-in user, streams, failover."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
import yaml

from persys.api.server import default_routes
from persys.client import ApiClient
from persys.errors import Forbidden, Unauthorized
from persys.gateway.server import Gateway
from persys.security.tls import client_context
from persys.store.server import EtcdServer, free_port
from tests.gateway.helpers import client, gateway_config, login
from tests.support.cluster import ApiThread, RunningApi, cli
from tests.support.eventually import eventually
from tests.support.github import FakeGitHub, user
from tests.support.workloads import workload

MALLORY = user("mallory")


def as_user(gateway: Gateway, running: RunningApi, token: str) -> ApiClient:
    return ApiClient(gateway.url, ca=running.pki.ca_cert, headers={"Authorization": f"Bearer {token}"})


async def bind(running: RunningApi, subject: tuple[str, str], role: str, namespace: str = "") -> None:
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    metadata: dict[str, Any] = {"name": f"{subject[1].replace(':', '-').replace('/', '-')}-{role}"}
    if namespace:
        metadata["namespace"] = namespace
    async with running.client() as admin:
        await admin.apply_raw({"apiVersion": "persys.dev/v1", "kind": kind, "metadata": metadata,
                               "spec": {"role": role, "subjects": [{"kind": subject[0], "name": subject[1]}]}})


async def test_requests_go_through_as_the_user_and_bindings_decide(
        gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    octocat, mallory = await login(gateway, api, github), await login(gateway, api, github, MALLORY)
    await bind(api, ("github-team", "acme/ops"), "edit", namespace="default")  # octocat is in acme/ops
    async with as_user(gateway, api, octocat["access_token"]) as ops, \
            as_user(gateway, api, mallory["access_token"]) as outsider:
        created = await eventually(lambda: _try(ops.create(workload("web"))), what="the binding in the cache")
        assert created.metadata.name == "web"
        assert [w.metadata.name for w in (await ops.list("Workload", "default"))[0]] == ["web"]
        with pytest.raises(Forbidden, match="github:mallory"):
            await outsider.list("Workload", "default")
        with pytest.raises(Forbidden, match="github:octocat"):
            await ops.list("Node", None)  # cluster-scoped: the namespace binding does not reach it
        # a caller cannot choose whom the gateway impersonates
        sneaky = ApiClient(gateway.url, ca=api.pki.ca_cert, headers={
            "Authorization": f"Bearer {mallory['access_token']}", "Impersonate-User": "github:octocat",
            "Impersonate-Group": "github-team:acme/ops"})
        async with sneaky:
            with pytest.raises(Forbidden, match="github:mallory"):
                await sneaky.list("Workload", "default")


async def _try(call: Any) -> Any:
    try:
        return await call
    except Forbidden:
        return None


async def test_no_token_or_a_bad_one_is_401(gateway: Gateway, api: RunningApi) -> None:
    ssl = client_context(api.pki.ca_cert)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl)) as session:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic dXNlcjpwYXNz"}):
            async with session.get(gateway.url + "/apis/persys.dev/v1/namespaces/default/workloads",
                                   headers=headers) as resp:
                body = await resp.json()
                assert resp.status == 401 and body["kind"] == "Status", (headers, body)


async def test_a_watch_streams_through_unbuffered(gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    tokens = await login(gateway, api, github)
    await bind(api, ("github-user", "octocat"), "view", namespace="default")
    seen: list[str] = []
    async with as_user(gateway, api, tokens["access_token"]) as viewer, api.client() as admin:
        _, version = await eventually(lambda: _try(viewer.list("Workload", "default")), what="view allowed")

        async def follow() -> None:
            async for item in viewer.watch("Workload", "default", resource_version=version):
                if item.object is not None:
                    seen.append(item.object.metadata.name)

        watching = asyncio.create_task(follow())
        await admin.create(workload("first"))
        await eventually(lambda: seen == ["first"], what="the first event while the stream stays open")
        await admin.create(workload("second"))
        await eventually(lambda: seen == ["first", "second"], what="the second event")
        assert not watching.done()
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)


async def test_requests_fail_over_to_another_api_server(
        api: RunningApi, github: FakeGitHub, etcd_server: EtcdServer) -> None:
    second = ApiThread(etcd_server.url, api.pki.home).start()
    dead = f"https://127.0.0.1:{free_port()}"  # nothing listens: any method may go on to the next
    try:
        config = gateway_config(api, github, servers=(dead, api.secure_url, second.secure_url))
        async with Gateway(config) as gw:
            tokens = await login(gw, api, github)
            await bind(api, ("github-user", "octocat"), "admin")
            async with as_user(gw, api, tokens["access_token"]) as octocat:
                await eventually(lambda: _try(octocat.create(workload("a"))), what="a created past a dead server")
                api.thread.stop()  # the first live server goes away: GETs and POSTs go to the second
                assert [w.metadata.name for w in (await octocat.list("Workload", "default"))[0]] == ["a"]
                await octocat.create(workload("b"))
            assert gw.sessions.informer.synced.is_set()
    finally:
        second.stop()


async def test_cli_commands_go_through_the_gateway_after_login(
        gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    tokens = await login(gateway, api, github, MALLORY)
    config = yaml.safe_load((api.home / "config.yaml").read_text())
    config.update(gateway=gateway.url, token=tokens["access_token"], refreshToken=tokens["refresh_token"])
    (api.home / "config.yaml").write_text(yaml.safe_dump(config))
    code, out, err = await asyncio.to_thread(cli, api.home, "get", "workloads")
    assert code == 1 and "github:mallory" in err, out + err  # the user's rights, not the admin certificate's
    await bind(api, ("github-user", "mallory"), "view", namespace="default")

    async def listed() -> bool:
        code, _, _ = await asyncio.to_thread(cli, api.home, "get", "workloads")
        return code == 0

    await eventually(listed, what="mallory may list once bound")
    code, out, err = await asyncio.to_thread(cli, api.home, "auth", "can-i", "delete", "workloads")
    assert code == 1 and out.startswith("no"), out + err


async def test_logged_out_tokens_stop_at_the_proxy_at_once(
        gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    tokens = await login(gateway, api, github)
    await bind(api, ("github-user", "octocat"), "view", namespace="default")
    async with as_user(gateway, api, tokens["access_token"]) as octocat:
        await eventually(lambda: _try(octocat.list("Workload", "default")), what="allowed")
        await client(gateway, api).logout(tokens["access_token"])
        with pytest.raises(Unauthorized, match="ended"):
            await octocat.list("Workload", "default")


async def test_reconciliation_routes_follow_the_bindings(api: RunningApi, github: FakeGitHub,
                                                        etcd_server: EtcdServer) -> None:
    full = ApiThread(etcd_server.url, api.pki.home, extra_routes=default_routes()).start()  # with /workloads/…
    try:
        async with Gateway(gateway_config(api, github, servers=(full.secure_url,))) as gw:
            await _reconciliation_routes(gw, api, github)
    finally:
        full.stop()


async def _reconciliation_routes(gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    tokens = await login(gateway, api, github)
    async with api.client() as admin:
        await admin.create(workload("web"))
    await bind(api, ("github-user", "octocat"), "view", namespace="default")
    stop = {"desiredState": "Stopped"}
    async with as_user(gateway, api, tokens["access_token"]) as octocat:
        await eventually(lambda: _try(octocat.list("Workload", "default")), what="view allowed")
        with pytest.raises(Forbidden, match="github:octocat"):
            await octocat.request("PUT", "/workloads/web/desired-state", body=stop)  # view may not change it
        with pytest.raises(Forbidden, match="all namespaces"):
            await octocat.request("GET", "/reconciliation/stats")  # stats are about every namespace
        await bind(api, ("github-user", "octocat"), "edit", namespace="default")
        changed = await eventually(lambda: _try(octocat.request("PUT", "/workloads/web/desired-state", body=stop)),
                                   what="edit allowed")
        assert changed[1]["spec"]["desiredState"] == "Stopped"
