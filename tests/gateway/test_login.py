"""GitHub login at the gateway against a stand-in GitHub: device flow, web flow, refresh, logout, sessions."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import yaml

from persys.client.gateway import DEVICE_GRANT, GatewayClient
from persys.errors import Unauthorized
from persys.gateway.config import SESSIONS_NAMESPACE
from persys.gateway.server import Gateway
from persys.security.tls import client_context
from tests.gateway.helpers import OCTOCAT, client, gateway_config, login, post
from tests.support.cluster import RunningApi, cli
from tests.support.eventually import eventually
from tests.support.github import FakeGitHub, user


async def test_device_flow_waits_for_approval_and_slows_down_when_asked(
        gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    status, start = await post(gateway, api, "/auth/device")
    assert status == 200 and start["interval"] == 1 and start["verification_uri"].startswith(github.url)
    form = {"grant_type": DEVICE_GRANT, "device_code": start["device_code"]}
    status, pending = await post(gateway, api, "/auth/token", form)
    assert (status, pending["error"]) == (400, "authorization_pending")
    status, slow = await post(gateway, api, "/auth/token", form)  # at once again: too fast
    assert (status, slow["error"], slow["interval"]) == (400, "slow_down", 2)



async def test_the_cli_client_polls_at_the_interval_and_slows_down_when_told(
        gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    sleeps: list[float] = []
    codes: list[str] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            github.approve(codes[0], OCTOCAT)
        await asyncio.sleep(seconds if len(sleeps) > 2 else 0)  # the second poll comes too fast

    tokens = await client(gateway, api).device_login(lambda start: codes.append(start["user_code"]), sleep=sleep)
    assert tokens["user"] == "github:octocat"
    assert tokens["groups"] == ["github-org:acme", "github-team:acme/ops"]
    assert sleeps == [1, 1, 2]  # GitHub's interval, then the longer one slow_down gave


async def test_an_expired_or_denied_code_ends_the_login(api: RunningApi, github: FakeGitHub) -> None:
    github.expires_in = 1
    async with Gateway(gateway_config(api, github)) as gw:
        with pytest.raises(Unauthorized, match="expired"):
            await client(gw, api).device_login(lambda start: None)
        github.expires_in = 900
        with pytest.raises(Unauthorized, match="access_denied"):
            await client(gw, api).device_login(lambda start: github.deny(start["user_code"]))


async def test_tokens_work_refresh_rotates_and_logout_revokes(
        gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    tokens = await login(gateway, api, github)
    gw = client(gateway, api)
    listed = await gw.sessions(tokens["access_token"])
    assert [s["user"] for s in listed["items"]] == ["github:octocat"]
    sid = listed["current"]

    refreshed = await gw.refresh(tokens["refresh_token"])
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    with pytest.raises(Unauthorized, match="already used"):
        await gw.refresh(tokens["refresh_token"])  # a refresh token works once

    # the session is a Secret; the GitHub token in it is sealed, never in the clear
    async with api.client() as admin:
        secret = await admin.get("Secret", f"session-{sid}", namespace=SESSIONS_NAMESPACE)
    github_tokens = set(github.tokens)
    assert github_tokens and not any(t in value for t in github_tokens for value in secret.spec.values())

    await gw.logout(refreshed["access_token"])
    with pytest.raises(Unauthorized, match="ended"):
        await gw.sessions(refreshed["access_token"])  # at once, though the token has not expired
    with pytest.raises(Unauthorized):
        await gw.refresh(refreshed["refresh_token"])


async def test_a_user_revokes_their_own_sessions_only(gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    mine, other = await login(gateway, api, github), await login(gateway, api, github, user("mallory"))
    gw = client(gateway, api)
    theirs = (await gw.sessions(other["access_token"]))["current"]
    with pytest.raises(Exception, match="not yours"):
        await gw.revoke(mine["access_token"], theirs)
    second = await login(gateway, api, github)
    second_id = (await gw.sessions(second["access_token"]))["current"]
    await eventually(lambda: _listed(gw, mine["access_token"], 2), what="both sessions listed")
    await gw.revoke(mine["access_token"], second_id)
    with pytest.raises(Unauthorized):
        await gw.sessions(second["access_token"])
    assert (await gw.sessions(other["access_token"]))["current"] == theirs


async def _listed(gw: GatewayClient, token: str, count: int) -> bool:
    return len((await gw.sessions(token))["items"]) == count


async def test_refresh_reads_orgs_again_and_ends_when_github_revoked_the_app(
        gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    who = user("octocat", orgs=["acme"])
    tokens = await login(gateway, api, github, who)
    who.orgs.append("initech")
    refreshed = await client(gateway, api).refresh(tokens["refresh_token"])
    assert refreshed["groups"] == ["github-org:acme", "github-org:initech"]
    github.revoke_all()
    with pytest.raises(Unauthorized, match="GitHub"):
        await client(gateway, api).refresh(refreshed["refresh_token"])


async def test_web_flow_with_state_and_pkce(gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    github.web_user = OCTOCAT
    ssl = client_context(api.pki.ca_cert)
    jar = aiohttp.CookieJar(unsafe=True)  # a browser keeps cookies of an IP address too
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl), cookie_jar=jar) as browser:
        async with browser.get(gateway.url + "/auth/login?next=/ui/", allow_redirects=False) as resp:
            assert resp.status == 302
            to_github = resp.headers["Location"]
        query = parse_qs(urlsplit(to_github).query)
        assert query["code_challenge_method"] == ["S256"] and query["state"][0]
        async with browser.get(to_github, allow_redirects=False) as resp:  # GitHub sends the browser back
            back = resp.headers["Location"]
        forged = back.replace(f"state={query['state'][0]}", "state=forged")
        async with browser.get(forged, allow_redirects=False) as resp:
            assert resp.status == 401 and "state" in (await resp.json())["message"]
        async with browser.get(back, allow_redirects=False) as resp:
            assert resp.status == 302 and resp.headers["Location"] == "/ui/"
        async with browser.get(gateway.url + "/auth/whoami") as resp:  # the session cookie
            assert (await resp.json())["user"] == "github:octocat"
    exchanged = [form for method, path, form in github.requests if path == "/login/oauth/access_token"]
    assert exchanged and exchanged[-1]["code_verifier"]


async def test_the_web_flow_refuses_open_redirects(gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    from persys.gateway.login import local_path

    assert [local_path(p) for p in ("/ui/", "//evil.example", "https://evil.example", "/\\evil", "")] == \
        ["/ui/", "/", "/", "/", "/"]


async def test_cli_login_saves_the_token_and_commands_use_it(
        gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    async def approve() -> None:
        await eventually(lambda: github.devices, what="a device code")
        github.approve(next(iter(github.devices.values())).user_code, OCTOCAT)

    approving = asyncio.create_task(approve())
    code, out, err = await asyncio.to_thread(cli, api.home, "login", "--gateway", gateway.url)
    await approving
    assert code == 0, out + err
    assert "enter the code" in out and "Logged in as github:octocat" in out
    config = yaml.safe_load((api.home / "config.yaml").read_text())
    assert config["gateway"] == gateway.url and config["token"] and config["refreshToken"]
    assert (api.home / "config.yaml").stat().st_mode & 0o777 == 0o600

    code, out, err = await asyncio.to_thread(cli, api.home, "sessions")
    assert code == 0 and "github:octocat" in out and "(this one)" in out, out + err
    code, out, err = await asyncio.to_thread(cli, api.home, "logout")
    assert code == 0 and "Logged out" in out, out + err
    assert "token" not in yaml.safe_load((api.home / "config.yaml").read_text())
