"""Where a cluster's files live under ``$PERSYS_HOME`` (default ``~/.persys``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_home() -> Path:
    return Path(os.environ.get("PERSYS_HOME") or Path.home() / ".persys")


@dataclass(frozen=True)
class HomePaths:
    """The layout of ``$PERSYS_HOME``: the PKI, the HMAC secret, the cluster id, etcd's data, the CLI config."""

    home: Path

    @property
    def pki(self) -> Path:
        return self.home / "pki"

    @property
    def ca_cert(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.pki / "ca.key"

    def cert(self, identity: str) -> Path:
        """The certificate of ``identity``: ``server``, ``admin``, ``controller`` or ``node-<name>``."""
        return self.pki / f"{identity}.crt"

    def key(self, identity: str) -> Path:
        return self.pki / f"{identity}.key"

    @property
    def hmac_secret(self) -> Path:
        """The agents' HMAC keyring: one line of hex (key id ``default``) or JSON (``persys.security.keyring``)."""
        return self.pki / "agent-hmac.secret"

    @property
    def cluster_id(self) -> Path:
        """The cluster's id (one line): agents stamp it on every container they create."""
        return self.pki / "cluster-id"

    @property
    def etcd_data(self) -> Path:
        return self.home / "etcd"

    @property
    def config(self) -> Path:
        return self.home / "config.yaml"

    @property
    def state(self) -> Path:
        return self.home / "state"


def read_cluster_id(paths: HomePaths) -> str:
    """The id ``persys pki init`` wrote, or "" for a home made before clusters had one."""
    return paths.cluster_id.read_text().strip() if paths.cluster_id.exists() else ""
