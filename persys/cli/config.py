"""The CLI's config file (``$PERSYS_HOME/config.yaml``, written by ``persys pki init`` and ``persys up``).

It names the API server and the admin client certificate, so that ``persys get workloads``
works with no flags, the way a kubeconfig does. It may also name the cluster DNS server and
zone (``dns: 127.0.0.1:5353``, ``zone: persys.local``): the CLI then discovers the live API
servers by SRV ``_persys-api._tcp.<zone>`` and keeps ``server`` as the fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from persys.errors import BadRequest
from persys.security.paths import HomePaths

DEFAULT_ZONE = "persys.local"


@dataclass(frozen=True)
class ClientConfig:
    """Where the API is, which certificate to present, and where to discover API servers."""

    server: str
    ca: Path | None
    cert: Path | None
    key: Path | None
    dns: str | None = None  # HOST:PORT of the cluster DNS server; None: no discovery
    zone: str = DEFAULT_ZONE
    gateway: str = ""  # after `persys login`: the gateway URL, and the tokens it gave
    token: str = ""
    refresh_token: str = ""
    file: Path | None = None  # where this config was read from


def _path(value: object, base: Path) -> Path | None:
    if not value:
        return None
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base / path


def load(home: Path, config_file: Path | None = None, server: str | None = None,
         dns: str | None = None) -> ClientConfig:
    """The config of ``config_file`` (default ``home/config.yaml``), ``server`` and ``dns`` overriding it.

    Without a config file the home's PKI (CA, admin certificate) is used when it exists.
    """
    paths = HomePaths(home)
    file = config_file or paths.config
    if file.exists():
        data = _read(file, "a mapping with server, ca, cert and key")
        url = server or str(data.get("server") or "")
        if not url:
            raise BadRequest(f"{file}: no server URL; add `server:` or pass --server")
        base = file.parent
        return ClientConfig(url, _path(data.get("ca"), base), _path(data.get("cert"), base),
                            _path(data.get("key"), base), dns=dns or str(data.get("dns") or "") or None,
                            zone=str(data.get("zone") or DEFAULT_ZONE), gateway=str(data.get("gateway") or ""),
                            token=str(data.get("token") or ""), refresh_token=str(data.get("refreshToken") or ""),
                            file=file)
    if config_file is not None:
        raise BadRequest(f"{config_file}: no such config file")
    if not server:
        raise BadRequest(f"no config at {file}: run `persys pki init` or `persys up`, or pass --server")
    admin = paths.cert("admin").exists()
    return ClientConfig(server, paths.ca_cert if paths.ca_cert.exists() else None,
                        paths.cert("admin") if admin else None, paths.key("admin") if admin else None,
                        dns=dns or None)


def save_login(file: Path, gateway: str, token: str, refresh_token: str, user: str) -> None:
    """Record a login in the config ``file`` (other keys kept); the file is readable by its owner only."""
    data = _read(file)
    data.update({"gateway": gateway, "token": token, "refreshToken": refresh_token, "user": user})
    _write(file, data)


def forget_login(file: Path) -> None:
    """Drop the login from the config ``file``: commands use the client certificate again."""
    data = _read(file)
    for key in ("gateway", "token", "refreshToken", "user"):
        data.pop(key, None)
    _write(file, data)


def _read(file: Path, shape: str = "a mapping") -> dict[str, Any]:
    """The config file's mapping ({} when there is none); BadRequest naming the file otherwise."""
    if not file.exists():
        return {}
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as e:
        raise BadRequest(f"{file}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise BadRequest(f"{file}: must be {shape}")
    return data


def _write(file: Path, data: dict[str, object]) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    file.touch(mode=0o600)
    file.chmod(0o600)  # tokens are in it
    file.write_text(yaml.safe_dump(data, sort_keys=False))
