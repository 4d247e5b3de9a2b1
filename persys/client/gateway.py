"""The gateway's login endpoints, for the CLI: device flow, refresh, logout, sessions.

``persys login`` starts a device flow and polls with the interval the gateway passes on from
GitHub, waiting longer after ``slow_down`` and giving up when the code expires; the tokens it gets
go into the CLI's config. Commands then call the gateway with ``Authorization: Bearer`` and
refresh the access token shortly before it expires (``fresh_token``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt

from persys.errors import BadRequest, Unauthorized, Unavailable, from_status
from persys.security.tls import client_context

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
REFRESH_MARGIN = 60  # seconds: an access token this close to expiry is refreshed first


class GatewayClient:
    """Calls to one gateway URL (TLS trusting ``ca``, or the system's CAs when None)."""

    def __init__(self, url: str, *, ca: Path | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._ssl = client_context(ca) if ca is not None else None
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def _call(self, method: str, path: str, *, form: dict[str, str] | None = None,
                    token: str = "") -> tuple[int, Any]:
        headers = {"Accept": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl if self._ssl else True),
                                             timeout=self.timeout) as session, \
                    session.request(method, self.url + path, data=form, headers=headers) as resp:
                body = await resp.json(content_type=None)
                return resp.status, body
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise Unavailable(f"cannot reach the gateway at {self.url}: {e}") from e

    async def _ok(self, method: str, path: str, *, token: str = "") -> Any:
        status, body = await self._call(method, path, token=token)
        if status >= 400:
            raise from_status(body if isinstance(body, dict) else {}, status)
        return body

    async def device_login(self, show: Callable[[dict[str, Any]], None],
                           sleep: Callable[[float], Any] = asyncio.sleep) -> dict[str, Any]:
        """The whole device flow: ``show`` gets the code and URL; the tokens once the user approved."""
        status, start = await self._call("POST", "/auth/device")
        if status != 200:
            raise _oauth_error(start)
        show(start)
        interval = float(start.get("interval") or 5)
        deadline = time.monotonic() + float(start.get("expires_in") or 900)
        form = {"grant_type": DEVICE_GRANT, "device_code": str(start["device_code"])}
        while True:
            await sleep(interval)
            status, body = await self._call("POST", "/auth/token", form=form)
            if status == 200:
                return dict(body)
            error = body.get("error") if isinstance(body, dict) else None
            if error == "authorization_pending":
                pass
            elif error == "slow_down":  # RFC 8628: wait longer from now on (GitHub says how long)
                interval = float(body.get("interval") or interval + 5)
            else:
                raise _oauth_error(body)
            if time.monotonic() + interval > deadline:
                raise Unauthorized("the code expired before it was entered: run `persys login` again")

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        status, body = await self._call("POST", "/auth/token",
                                        form={"grant_type": "refresh_token", "refresh_token": refresh_token})
        if status != 200:
            raise _oauth_error(body, hint="run `persys login` again")
        return dict(body)

    async def logout(self, token: str) -> dict[str, Any]:
        return dict(await self._ok("POST", "/auth/logout", token=token))

    async def sessions(self, token: str) -> dict[str, Any]:
        return dict(await self._ok("GET", "/auth/tokens", token=token))

    async def revoke(self, token: str, session: str) -> dict[str, Any]:
        return dict(await self._ok("DELETE", f"/auth/tokens/{session}", token=token))


def expires_soon(token: str, margin: float = REFRESH_MARGIN) -> bool:
    """Whether an access token expires within ``margin`` seconds (its ``exp`` read, not verified:
    the gateway verifies; this only decides when to refresh)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return True
    return float(claims.get("exp") or 0) - time.time() < margin


def _oauth_error(body: Any, hint: str = "") -> Unauthorized | BadRequest:
    if not isinstance(body, dict):
        return BadRequest(f"the gateway answered {body!r}")
    if body.get("kind") == "Status":
        status = from_status(body, int(body.get("code") or 400))
        return status if isinstance(status, Unauthorized | BadRequest) else BadRequest(status.message)
    error, description = str(body.get("error") or "error"), str(body.get("error_description") or "")
    text = f"{error}: {description}" if description else error
    return Unauthorized(f"{text}; {hint}" if hint else text)
