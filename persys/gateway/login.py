"""The gateway's login routes: GitHub device flow for the CLI, web flow for browsers, refresh, logout.

The gateway is the OAuth server of its own clients (RFC 6749/8628 shapes), and GitHub's client:

- ``POST /auth/device``: starts a device flow at GitHub; answers the user code, the URL to type it
  at, the device code and the interval GitHub asks for.
- ``POST /auth/token`` with ``grant_type=urn:ietf:params:oauth:grant-type:device_code`` polls GitHub
  once: GitHub's OAuth error (``authorization_pending``, ``slow_down`` and its new ``interval``,
  ``expired_token``, ``access_denied``) comes back as a 400 with that ``error``; GitHub's token
  becomes a session and the gateway's own tokens. ``grant_type=refresh_token`` refreshes.
- ``GET /auth/login`` sends a browser to GitHub with ``state`` and a PKCE challenge, both kept in a
  signed HttpOnly cookie (the gateway holds no state); ``GET /auth/callback`` checks the state,
  exchanges the code with the verifier and sets the session cookies.
- ``POST /auth/logout`` ends the caller's session; ``GET /auth/whoami``; ``GET /auth/tokens`` lists
  the caller's sessions and ``DELETE /auth/tokens/{id}`` revokes one of them.

The GitHub token never reaches the client; the session keeps it sealed.
"""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Any

import jwt
from aiohttp import web

from persys.errors import BadRequest, Forbidden, NotFound, Unauthorized
from persys.gateway.github import DEVICE_GRANT, GitHub, OAuthError, pkce_pair
from persys.gateway.sessions import Sessions
from persys.gateway.tokens import Claims
from persys.httpedge import read_json

ACCESS_COOKIE = "persys_access"
REFRESH_COOKIE = "persys_refresh"
FLOW_COOKIE = "persys_oauth"
FLOW_SECONDS = 600  # a browser has ten minutes to come back from GitHub


def bearer(request: web.Request, *, cookies: bool) -> str:
    """The caller's access token: the Authorization header, or (``cookies``) the session cookie."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if header:
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization must be 'Bearer <token>' (persys login gives one)")
        return token.strip()
    if cookies and request.cookies.get(ACCESS_COOKIE):
        return request.cookies[ACCESS_COOKIE]
    raise Unauthorized("no credentials: log in (persys login, or /auth/login in a browser) and send "
                       "'Authorization: Bearer <token>'")


def local_path(value: str) -> str:
    """``value`` when it is a path on this gateway (no open redirect elsewhere), else ``/``."""
    return value if value.startswith("/") and not value.startswith("//") and "\\" not in value else "/"


class Login:
    """The routes above, over a ``GitHub`` client and the ``Sessions``."""

    def __init__(self, github: GitHub, sessions: Sessions, *, flow_key: bytes, public_url: str) -> None:
        self.github = github
        self.sessions = sessions
        self._flow_key = flow_key
        self.redirect_uri = f"{public_url.rstrip('/')}/auth/callback"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/auth/device", self.device)
        app.router.add_post("/auth/token", self.token)
        app.router.add_get("/auth/login", self.login)
        app.router.add_get("/auth/callback", self.callback)
        app.router.add_post("/auth/logout", self.logout)
        app.router.add_get("/auth/whoami", self.whoami)
        app.router.add_get("/auth/tokens", self.tokens)
        app.router.add_delete("/auth/tokens/{id}", self.revoke)

    async def caller(self, request: web.Request, *, cookies: bool = False) -> Claims:
        return await self.sessions.check(bearer(request, cookies=cookies))

    # -- the CLI: device flow and refresh --

    async def device(self, request: web.Request) -> web.Response:
        try:
            return web.json_response(await self.github.device_code())
        except OAuthError as e:
            return web.json_response(e.to_oauth(), status=400)

    async def token(self, request: web.Request) -> web.Response:
        form = await _form(request)
        grant = form.get("grant_type", "")
        try:
            if grant == DEVICE_GRANT:
                device_code = _field(form, "device_code")
                github_token = await self.github.poll_device(device_code)
                issued = await self.sessions.create(await self.github.user(github_token), github_token, "device")
            elif grant == "refresh_token":
                issued = await self.sessions.refresh(_field(form, "refresh_token"))
            else:
                raise OAuthError("unsupported_grant_type",
                                 f"grant_type must be {DEVICE_GRANT} or refresh_token, not {grant!r}")
        except OAuthError as e:
            return web.json_response(e.to_oauth(), status=400)
        except Unauthorized as e:
            return web.json_response({"error": "invalid_grant", "error_description": e.message}, status=400)
        return web.json_response(issued.to_dict(), headers={"Cache-Control": "no-store"})

    # -- browsers: web flow with state and PKCE --

    async def login(self, request: web.Request) -> web.Response:
        state = secrets.token_urlsafe(24)
        verifier, challenge = pkce_pair()
        url = self.github.authorize_url(self.redirect_uri, state, challenge)
        flow = jwt.encode({"state": state, "verifier": verifier, "next": local_path(request.query.get("next", "/")),
                           "exp": int(time.time()) + FLOW_SECONDS}, self._flow_key, algorithm="HS256")
        response = web.HTTPFound(url)
        response.set_cookie(FLOW_COOKIE, flow, max_age=FLOW_SECONDS, path="/auth", httponly=True, secure=True,
                            samesite="Lax")
        return response

    async def callback(self, request: web.Request) -> web.Response:
        if "error" in request.query:
            why = request.query.get("error_description") or request.query["error"]
            raise Unauthorized(f"GitHub did not log you in: {why}")
        code, state = request.query.get("code", ""), request.query.get("state", "")
        if not code or not state:
            raise BadRequest("the callback needs code and state (start at /auth/login)")
        try:
            flow: dict[str, Any] = jwt.decode(request.cookies.get(FLOW_COOKIE, ""), self._flow_key,
                                              algorithms=["HS256"])
        except jwt.InvalidTokenError:
            raise Unauthorized("the login took too long or did not start here: start again at /auth/login") from None
        if not hmac.compare_digest(str(flow.get("state", "")), state):
            raise Unauthorized("the state does not match this browser's login: start again at /auth/login")
        try:
            github_token = await self.github.exchange(code, self.redirect_uri, str(flow["verifier"]))
        except OAuthError as e:
            raise Unauthorized(f"GitHub refused the code: {e.message}") from None
        issued = await self.sessions.create(await self.github.user(github_token), github_token, "web")
        response = web.HTTPFound(local_path(str(flow.get("next", "/"))))
        response.del_cookie(FLOW_COOKIE, path="/auth")
        response.set_cookie(ACCESS_COOKIE, issued.access_token, max_age=issued.expires_in, path="/", httponly=True,
                            secure=True, samesite="Lax")
        response.set_cookie(REFRESH_COOKIE, issued.refresh_token, max_age=self.sessions.refresh_ttl, path="/auth",
                            httponly=True, secure=True, samesite="Strict")
        return response

    # -- the caller's sessions --

    async def logout(self, request: web.Request) -> web.Response:
        claims = await self.caller(request, cookies=True)
        try:
            await self.sessions.revoke(claims.session)
        except NotFound:
            pass
        response = web.json_response({"loggedOut": claims.user, "session": claims.session})
        response.del_cookie(ACCESS_COOKIE, path="/")
        response.del_cookie(REFRESH_COOKIE, path="/auth")
        return response

    async def whoami(self, request: web.Request) -> web.Response:
        claims = await self.caller(request, cookies=True)
        return web.json_response({"user": claims.user, "groups": list(claims.groups), "session": claims.session,
                                  "expires": int(claims.expires)})

    async def tokens(self, request: web.Request) -> web.Response:
        claims = await self.caller(request, cookies=True)
        return web.json_response({"items": self.sessions.list(claims.user), "current": claims.session})

    async def revoke(self, request: web.Request) -> web.Response:
        claims = await self.caller(request, cookies=True)
        sid = request.match_info["id"]
        try:
            owner = await self.sessions.owner(sid)
        except NotFound:
            raise NotFound(f"no session {sid!r}") from None
        if owner != claims.user:
            raise Forbidden(f"session {sid!r} is not yours ({claims.user})")
        await self.sessions.revoke(sid)
        return web.json_response({"revoked": sid})


async def _form(request: web.Request) -> dict[str, str]:
    """The token request's parameters: a form (as OAuth clients send) or a JSON object."""
    if request.content_type == "application/json":
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadRequest("the token request must be a JSON object")
        return {str(k): str(v) for k, v in body.items()}
    return {k: str(v) for k, v in (await request.post()).items()}


def _field(form: dict[str, str], name: str) -> str:
    value = form.get(name, "")
    if not value:
        raise OAuthError("invalid_request", f"{name} is required")
    return value
