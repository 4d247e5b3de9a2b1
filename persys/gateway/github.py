"""GitHub as the gateway's identity provider: the OAuth device and web flows, and who a user is.

The device flow (RFC 8628, GitHub's ``/login/device/code``) serves the CLI: GitHub gives a user
code to type at a URL and a device code to poll with; each poll answers a token, or an OAuth
error (``authorization_pending``, ``slow_down`` with a longer ``interval``, ``expired_token``,
``access_denied``) that the gateway passes on. The web flow serves browsers: an authorize URL
with ``state`` and a PKCE ``code_challenge`` (S256), and a code exchanged with its verifier.
A user is ``github:<login>`` and belongs to ``github-org:<org>`` and ``github-team:<org>/<team>``,
the subjects RoleBindings name. GitHub's base URLs come from the settings.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

from persys.errors import PersysError, Unauthorized, Unavailable
from persys.gateway.config import GitHubSettings

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


class OAuthError(PersysError):
    """An OAuth error answer (``error`` and ``error_description``), passed on to the gateway's client."""

    code = 400
    reason = "OAuthError"

    def __init__(self, error: str, description: str = "", interval: int | None = None) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description
        self.interval = interval

    def to_oauth(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "error_description": self.description}
        if self.interval is not None:
            body["interval"] = self.interval
        return body


@dataclass(frozen=True)
class GitHubUser:
    """Who logged in, as RoleBindings name them."""

    login: str
    orgs: tuple[str, ...]
    teams: tuple[str, ...]  # org/team-slug

    @property
    def username(self) -> str:
        return f"github:{self.login}"

    @property
    def groups(self) -> list[str]:
        return [f"github-org:{o}" for o in self.orgs] + [f"github-team:{t}" for t in self.teams]


def pkce_pair() -> tuple[str, str]:
    """A PKCE (RFC 7636) code verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class GitHub:
    """GitHub's OAuth endpoints and the user API, for one OAuth app."""

    def __init__(self, settings: GitHubSettings, *, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _require(self) -> None:
        if not self.settings.enabled:
            raise OAuthError("unsupported", "GitHub login is not configured on this gateway (--github-client-id)")

    # -- OAuth --

    async def _oauth(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        url = self.settings.url.rstrip("/") + path
        try:
            async with self._http().post(url, data=form, headers={"Accept": "application/json"}) as resp:
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise Unavailable(f"GitHub at {self.settings.url} did not answer {path}: {e}") from e
        if not isinstance(body, dict):
            raise Unavailable(f"GitHub answered {path} with {type(body).__name__}, not an object")
        if "error" in body:
            interval = body.get("interval")
            raise OAuthError(str(body["error"]), str(body.get("error_description") or ""),
                             int(interval) if isinstance(interval, int) else None)
        if resp.status >= 400:
            raise Unavailable(f"GitHub answered {path} with HTTP {resp.status}")
        return body

    async def device_code(self) -> dict[str, Any]:
        """Start a device flow: device_code, user_code, verification_uri, expires_in, interval."""
        self._require()
        body = await self._oauth("/login/device/code", {"client_id": self.settings.client_id,
                                                         "scope": self.settings.scope})
        missing = [k for k in ("device_code", "user_code", "verification_uri") if k not in body]
        if missing:
            raise Unavailable(f"GitHub's device code answer lacks {', '.join(missing)}")
        return {"device_code": str(body["device_code"]), "user_code": str(body["user_code"]),
                "verification_uri": str(body["verification_uri"]), "expires_in": int(body.get("expires_in", 900)),
                "interval": int(body.get("interval", 5))}

    async def poll_device(self, device_code: str) -> str:
        """One poll of a device flow: GitHub's access token, or the OAuthError GitHub answered."""
        self._require()
        body = await self._oauth("/login/oauth/access_token", {
            "client_id": self.settings.client_id, "device_code": device_code, "grant_type": DEVICE_GRANT})
        return _token(body)

    def authorize_url(self, redirect_uri: str, state: str, challenge: str) -> str:
        """Where a browser goes to log in (web flow, PKCE S256)."""
        self._require()
        query = urlencode({"client_id": self.settings.client_id, "redirect_uri": redirect_uri,
                           "scope": self.settings.scope, "state": state, "code_challenge": challenge,
                           "code_challenge_method": "S256", "allow_signup": "false"})
        return f"{self.settings.url.rstrip('/')}/login/oauth/authorize?{query}"

    async def exchange(self, code: str, redirect_uri: str, verifier: str) -> str:
        """The web flow's code exchanged (with the PKCE verifier) for GitHub's access token."""
        self._require()
        body = await self._oauth("/login/oauth/access_token", {
            "client_id": self.settings.client_id, "client_secret": self.settings.client_secret,
            "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier})
        return _token(body)

    # -- the user --

    async def _api(self, path: str, token: str) -> Any:
        url = self.settings.api_url.rstrip("/") + path
        headers = {**API_HEADERS, "Authorization": f"Bearer {token}"}
        try:
            async with self._http().get(url, headers=headers) as resp:
                if resp.status == 401:
                    raise Unauthorized("GitHub refused the token (revoked or expired); log in again")
                if resp.status >= 400:
                    raise Unavailable(f"GitHub answered {path} with HTTP {resp.status}")
                return await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise Unavailable(f"GitHub API at {self.settings.api_url} did not answer {path}: {e}") from e

    async def user(self, token: str) -> GitHubUser:
        """The user a GitHub token belongs to, with their orgs and teams."""
        me = await self._api("/user", token)
        if not isinstance(me, dict) or not isinstance(me.get("login"), str) or not me["login"]:
            raise Unavailable("GitHub's /user answer has no login")
        orgs = await self._api("/user/orgs?per_page=100", token)
        teams = await self._api("/user/teams?per_page=100", token)
        org_names = tuple(sorted({str(o["login"]) for o in orgs if isinstance(o, dict) and o.get("login")}))
        team_names = tuple(sorted({f"{t['organization']['login']}/{t['slug']}" for t in teams
                                   if isinstance(t, dict) and t.get("slug")
                                   and isinstance(t.get("organization"), dict) and t["organization"].get("login")}))
        return GitHubUser(str(me["login"]), org_names, team_names)


def _token(body: dict[str, Any]) -> str:
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise Unavailable("GitHub's token answer has no access_token")
    return token
