"""A stand-in GitHub on 127.0.0.1 for the gateway's tests, speaking GitHub's wire format.

OAuth: the device flow (``/login/device/code``, ``/login/oauth/access_token`` with the device grant:
``authorization_pending`` until the test approves the user code, ``slow_down`` with a longer
``interval`` when polled too fast, ``expired_token`` once the code's time is up, ``access_denied``
when the test denies it) and the web flow (``/login/oauth/authorize`` redirects back at once for
the configured user, checking nothing a browser would not send; the code exchange checks the
client secret, the redirect URI and the PKCE verifier against the S256 challenge). The REST API
under ``/api``: ``/user``, ``/user/orgs``, ``/user/teams`` for a bearer token it issued.
Every request is recorded, so tests can check what the gateway sent.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

CLIENT_ID = "Iv1.test-client"
CLIENT_SECRET = "test-client-secret"


@dataclass
class User:
    login: str
    orgs: list[str] = field(default_factory=list)
    teams: list[tuple[str, str]] = field(default_factory=list)  # (org, team slug)


@dataclass
class DeviceCode:
    user_code: str
    expires: float
    interval: int
    last_poll: float = 0.0
    user: User | None = None
    denied: bool = False


class FakeGitHub:
    """The stand-in; ``url`` is its base, ``api_url`` its REST API."""

    def __init__(self, *, interval: int = 1, slow_down_add: int = 1, expires_in: int = 900) -> None:
        self.interval, self.slow_down_add, self.expires_in = interval, slow_down_add, expires_in
        self.devices: dict[str, DeviceCode] = {}
        self.tokens: dict[str, User] = {}
        self.codes: dict[str, tuple[User, str, str]] = {}  # code -> user, redirect_uri, challenge
        self.web_user: User | None = None  # who "logs in" at /login/oauth/authorize
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, form or query)
        self.app = web.Application()
        self.app.router.add_post("/login/device/code", self.device_code)
        self.app.router.add_post("/login/oauth/access_token", self.access_token)
        self.app.router.add_get("/login/oauth/authorize", self.authorize)
        self.app.router.add_get("/api/user", self.user)
        self.app.router.add_get("/api/user/orgs", self.orgs)
        self.app.router.add_get("/api/user/teams", self.teams)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    async def start(self) -> FakeGitHub:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what a test does as the user --

    def approve(self, user_code: str, user: User) -> None:
        next(d for d in self.devices.values() if d.user_code == user_code).user = user

    def deny(self, user_code: str) -> None:
        next(d for d in self.devices.values() if d.user_code == user_code).denied = True

    def revoke_all(self) -> None:
        """The user revoked the OAuth app: every token stops working."""
        self.tokens.clear()

    def issue(self, user: User) -> str:
        token = "gho_" + secrets.token_hex(16)
        self.tokens[token] = user
        return token

    # -- OAuth --

    async def _record(self, request: web.Request) -> dict[str, str]:
        form = {k: str(v) for k, v in (await request.post()).items()} if request.method == "POST" else \
            dict(request.query)
        self.requests.append((request.method, request.path, form))
        return form

    async def device_code(self, request: web.Request) -> web.Response:
        form = await self._record(request)
        if form.get("client_id") != CLIENT_ID:
            return web.json_response({"error": "incorrect_client_credentials"})
        device = "dc_" + secrets.token_hex(8)
        user_code = f"{secrets.token_hex(2).upper()}-{secrets.token_hex(2).upper()}"
        self.devices[device] = DeviceCode(user_code, time.monotonic() + self.expires_in, self.interval)
        return web.json_response({"device_code": device, "user_code": user_code,
                                  "verification_uri": f"{self.url}/login/device", "expires_in": self.expires_in,
                                  "interval": self.interval})

    async def access_token(self, request: web.Request) -> web.Response:
        form = await self._record(request)
        if request.headers.get("Accept") != "application/json":
            return web.Response(text="access_token=only-json-clients-get-json")  # GitHub's default is a form
        if form.get("client_id") != CLIENT_ID:
            return web.json_response({"error": "incorrect_client_credentials"})
        if form.get("grant_type") == "urn:ietf:params:oauth:grant-type:device_code":
            return self._device_poll(form)
        return self._exchange(form)

    def _device_poll(self, form: dict[str, str]) -> web.Response:
        device = self.devices.get(form.get("device_code", ""))
        if device is None:
            return web.json_response({"error": "incorrect_device_code"})
        now = time.monotonic()
        if now > device.expires:
            return web.json_response({"error": "expired_token", "error_description": "The device code has expired."})
        if device.last_poll and now - device.last_poll < device.interval:
            device.last_poll = now
            device.interval += self.slow_down_add
            return web.json_response({"error": "slow_down", "interval": device.interval,
                                      "error_description": "Too many requests have been made in the same timeframe."})
        device.last_poll = now
        if device.denied:
            return web.json_response({"error": "access_denied"})
        if device.user is None:
            return web.json_response({"error": "authorization_pending"})
        return web.json_response({"access_token": self.issue(device.user), "token_type": "bearer",
                                  "scope": "read:org"})

    async def authorize(self, request: web.Request) -> web.Response:
        query = await self._record(request)
        if query.get("client_id") != CLIENT_ID or self.web_user is None:
            return web.Response(status=404, text="no such app or nobody logged in")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return web.Response(status=400, text="PKCE required")
        code = secrets.token_hex(10)
        self.codes[code] = (self.web_user, query.get("redirect_uri", ""), query["code_challenge"])
        raise web.HTTPFound(f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query.get('state', '')})}")

    def _exchange(self, form: dict[str, str]) -> web.Response:
        found = self.codes.pop(form.get("code", ""), None)
        if found is None or form.get("client_secret") != CLIENT_SECRET:
            return web.json_response({"error": "bad_verification_code"})
        user, redirect_uri, challenge = found
        verifier = form.get("code_verifier", "")
        computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if form.get("redirect_uri") != redirect_uri or computed != challenge:
            return web.json_response({"error": "bad_verification_code", "error_description": "PKCE or redirect"})
        return web.json_response({"access_token": self.issue(user), "token_type": "bearer", "scope": "read:org"})

    # -- REST API --

    def _who(self, request: web.Request) -> User:
        self.requests.append((request.method, request.path, dict(request.query)))
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        user = self.tokens.get(token) if scheme.lower() in ("bearer", "token") else None
        if user is None:
            raise web.HTTPUnauthorized(text='{"message": "Bad credentials"}', content_type="application/json")
        return user

    async def user(self, request: web.Request) -> web.Response:
        user = self._who(request)
        return web.json_response({"login": user.login, "id": abs(hash(user.login)) % 10**8, "type": "User"})

    async def orgs(self, request: web.Request) -> web.Response:
        return web.json_response([{"login": org} for org in self._who(request).orgs])

    async def teams(self, request: web.Request) -> web.Response:
        return web.json_response([{"slug": team, "organization": {"login": org}}
                                  for org, team in self._who(request).teams])


def user(login: str, orgs: list[str] | None = None, teams: list[tuple[str, str]] | None = None) -> User:
    return User(login, list(orgs or []), list(teams or []))


def as_settings(github: FakeGitHub) -> dict[str, Any]:
    """The gateway's GitHub settings for this stand-in."""
    return {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "url": github.url, "api_url": github.api_url}
