"""Login sessions, kept as Secrets in the namespace ``persys-gateway`` through the API.

A session is created by a login and holds who logged in (user and groups), the digest of its
current refresh token, when it expires, how the user logged in, and the user's GitHub token
sealed with the gateway's key (to read their orgs and teams again at each refresh). Any gateway
of the cluster can serve any session: an API-backed informer caches them, so an access token is
accepted only while its session exists, and deleting the Secret (``persys logout``, ``persys auth
revoke``) ends it everywhere at once. Nothing here touches etcd.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from persys.client.api import ApiClient
from persys.errors import Conflict, NotFound, Unauthorized
from persys.gateway.config import SESSIONS_NAMESPACE
from persys.gateway.github import GitHub, GitHubUser
from persys.gateway.tokens import Claims, Tokens
from persys.observability.logging import get_logger
from persys.operator.informer import api_informer
from persys.resources.model import ObjectMeta, Resource
from persys.runtime.clock import from_iso, to_iso
from persys.runtime.informer import Informer

log = get_logger("gateway.sessions")

LABEL = "persys.dev/gateway-session"
PREFIX = "session-"


@dataclass(frozen=True)
class Issued:
    """What a login or a refresh hands the client."""

    access_token: str
    refresh_token: str
    expires_in: int
    user: str
    groups: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "token_type": "Bearer", "expires_in": self.expires_in,
                "refresh_token": self.refresh_token, "user": self.user, "groups": list(self.groups)}


def describe(secret: Resource) -> dict[str, Any]:
    """A session as listed: never its digest or GitHub token."""
    data = secret.spec
    return {"id": secret.metadata.name.removeprefix(PREFIX), "user": data.get("user", ""),
            "groups": [g for g in str(data.get("groups", "")).split(",") if g], "via": data.get("via", ""),
            "created": data.get("created", ""), "expires": data.get("expires", "")}


class Sessions:
    """Creates, refreshes, checks, lists and revokes sessions."""

    def __init__(self, client: ApiClient, tokens: Tokens, github: GitHub, *, refresh_ttl: int) -> None:
        self.client = client
        self.tokens = tokens
        self.github = github
        self.refresh_ttl = refresh_ttl
        self.informer: Informer = api_informer(client, "Secret", namespace=SESSIONS_NAMESPACE)
        self._fresh: dict[str, Resource] = {}  # sessions created here, until the cache has them
        self._revoked: set[str] = set()  # sessions ended here, until the cache has dropped them

    # -- login and refresh --

    async def create(self, user: GitHubUser, github_token: str, via: str) -> Issued:
        sid = secrets.token_hex(8)
        refresh, digest = self.tokens.refresh(sid)
        now = time.time()
        secret = Resource(kind="Secret", metadata=ObjectMeta(
            name=PREFIX + sid, namespace=SESSIONS_NAMESPACE, labels={LABEL: "true"}), spec={
            "user": user.username, "groups": ",".join(user.groups), "refresh": digest, "via": via,
            "created": to_iso(now), "expires": to_iso(now + self.refresh_ttl),
            "github": self.tokens.seal(github_token)})
        self._fresh[sid] = await self.client.create(secret)
        log.info("session created", user=user.username, session=sid, via=via, groups=len(user.groups))
        access, ttl = self.tokens.access(user.username, user.groups, sid, now)
        return Issued(access, refresh, ttl, user.username, tuple(user.groups))

    async def refresh(self, refresh_token: str) -> Issued:
        """New tokens for a refresh token (which then stops working); the user's groups read again."""
        sid, digest = self.tokens.split_refresh(refresh_token)
        try:
            secret = await self.client.get("Secret", PREFIX + sid, namespace=SESSIONS_NAMESPACE)
        except NotFound:
            raise Unauthorized("the session has ended (logged out, revoked or expired): log in again") from None
        data = secret.spec
        if not hmac.compare_digest(str(data.get("refresh", "")), digest):
            raise Unauthorized("the refresh token was already used or is not this session's: log in again")
        if (from_iso(data.get("expires")) or 0.0) < time.time():
            await self._delete(sid)
            raise Unauthorized("the session has expired: log in again")
        try:
            user = await self.github.user(self.tokens.unseal(str(data.get("github", ""))))
        except Unauthorized:
            await self._delete(sid)
            raise
        refresh, new_digest = self.tokens.refresh(sid)
        secret.spec.update({"refresh": new_digest, "user": user.username, "groups": ",".join(user.groups),
                            "expires": to_iso(time.time() + self.refresh_ttl)})
        try:  # compare-and-swap on the version read: of two refreshes with one token, one wins
            await self.client.apply(secret)
        except Conflict:
            raise Unauthorized("the refresh token was already used: log in again") from None
        access, ttl = self.tokens.access(user.username, user.groups, sid)
        return Issued(access, refresh, ttl, user.username, tuple(user.groups))

    # -- checking an access token --

    async def check(self, token: str) -> Claims:
        """The claims of ``token`` while its session exists; Unauthorized otherwise."""
        claims = self.tokens.verify(token)
        if self._fresh or self._revoked:
            self.on_cached()
        if claims.session in self._revoked:
            raise Unauthorized("the session of this token has ended (logged out or revoked): log in again")
        if self.informer.get_by(SESSIONS_NAMESPACE, PREFIX + claims.session) is not None:
            return claims
        if claims.session in self._fresh:
            return claims  # created here a moment ago: the cache will show it
        if not self.informer.synced.is_set():  # no cache yet: ask the API
            try:
                await self.client.get("Secret", PREFIX + claims.session, namespace=SESSIONS_NAMESPACE)
                return claims
            except NotFound:
                pass
        raise Unauthorized("the session of this token has ended (logged out or revoked): log in again")

    def on_cached(self) -> None:
        """Forget the sessions the cache has caught up with."""
        for sid in [s for s in self._fresh if self.informer.get_by(SESSIONS_NAMESPACE, PREFIX + s) is not None]:
            del self._fresh[sid]
        self._revoked = {s for s in self._revoked if self.informer.get_by(SESSIONS_NAMESPACE, PREFIX + s) is not None}

    # -- listing and revoking --

    def list(self, user: str | None = None) -> list[dict[str, Any]]:
        """The sessions (of ``user``, or all), newest first."""
        self.on_cached()
        cached = [s for s in self.informer.objects() if s.metadata.labels.get(LABEL)
                  and s.metadata.name.removeprefix(PREFIX) not in self._revoked]
        found = [describe(s) for s in [*cached, *self._fresh.values()]]
        return sorted((s for s in found if user is None or s["user"] == user), key=lambda s: s["created"],
                      reverse=True)

    async def owner(self, sid: str) -> str:
        """The user of session ``sid``; NotFound when there is none."""
        secret = await self.client.get("Secret", PREFIX + sid, namespace=SESSIONS_NAMESPACE)
        return str(secret.spec.get("user", ""))

    async def revoke(self, sid: str) -> None:
        """End session ``sid``: its refresh token and every access token of it stop working."""
        await self.client.delete("Secret", PREFIX + sid, namespace=SESSIONS_NAMESPACE)
        self._forget(sid)
        log.info("session revoked", session=sid)

    def _forget(self, sid: str) -> None:
        self._fresh.pop(sid, None)
        self._revoked.add(sid)

    async def _delete(self, sid: str) -> None:
        try:
            await self.client.delete("Secret", PREFIX + sid, namespace=SESSIONS_NAMESPACE)
        except NotFound:
            pass
        self._forget(sid)

    async def expire(self, every: float = 600.0) -> None:
        """Delete expired sessions, forever (a service of the gateway; any gateway may do it)."""
        while True:
            now = time.time()
            for secret in self.informer.objects():
                if (from_iso(secret.spec.get("expires")) or now) < now:
                    await self._delete(secret.metadata.name.removeprefix(PREFIX))
            await asyncio.sleep(every)
