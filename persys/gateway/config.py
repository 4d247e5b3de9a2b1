"""The gateway's settings: where it listens, which API servers it fronts, and where GitHub is."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from persys.security.pki import CERT_SECONDS, GATEWAY_NAMESPACE

GITHUB_URL = "https://github.com"
GITHUB_API_URL = "https://api.github.com"
SESSIONS_NAMESPACE = GATEWAY_NAMESPACE  # the gateway's sessions are Secrets here, read and written through the API
ACCESS_TTL = 15 * 60  # seconds an access token is valid
REFRESH_TTL = 30 * 86400  # seconds a session (its refresh token) lives without being refreshed


@dataclass(frozen=True)
class GitHubSettings:
    """A GitHub OAuth app: its client id (and secret, for the browser's web flow) and GitHub's base URLs.

    The base URLs are settings so that GitHub Enterprise works and tests run against a local stand-in.
    """

    client_id: str = ""
    client_secret: str = ""
    url: str = GITHUB_URL
    api_url: str = GITHUB_API_URL
    scope: str = "read:org"  # membership of orgs and teams, which bindings may name

    @property
    def enabled(self) -> bool:
        return bool(self.client_id)


@dataclass(frozen=True)
class GatewayConfig:
    """``persys gateway``'s flags as one value."""

    home: Path
    servers: tuple[str, ...]  # API servers to fall back to when DNS names none (or no DNS is given)
    listen: tuple[str, int] = ("127.0.0.1", 8443)
    dns: str | None = None  # HOST:PORT of the cluster DNS server, for SRV _persys-api._tcp.<zone>
    zone: str = "persys.local"
    identity: str = "gateway"  # the client certificate (role gateway) in $PERSYS_HOME/pki
    cert: Path | None = None  # the listener's certificate; default: one the cluster CA signs
    key: Path | None = None
    public_url: str = ""  # how browsers reach the gateway (the web flow's redirect URI); default from listen
    github: GitHubSettings = field(default_factory=GitHubSettings)
    certificate_seconds: float = CERT_SECONDS  # the listener's certificate when the cluster CA signs it
    access_ttl: int = ACCESS_TTL
    refresh_ttl: int = REFRESH_TTL

    @property
    def url(self) -> str:
        return self.public_url.rstrip("/") or f"https://{self.listen[0]}:{self.listen[1]}"
