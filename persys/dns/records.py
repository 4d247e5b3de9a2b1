"""SkyDNS records in etcd, laid out exactly as the CoreDNS etcd plugin reads them.

A DNS name maps to an etcd key by reversing its labels under ``/skydns``:
``web.default.persys.local`` → ``/skydns/local/persys/default/web``. Several records for one
name each get a unique last label (the key is then a child of the name). The value is the JSON
of CoreDNS's ``msg.Service``: ``host`` (an IP, or a name for SRV targets), ``port``,
``priority``, ``weight``, ``ttl`` and ``targetstrip`` (how many left labels to strip from the
key's own name to make the SRV target when ``host`` is an IP).

This module owns that mapping and the records a workload should have:
``<service>.<namespace>.<zone>`` A → the node's IP, and
``_<port name>._<protocol>.<service>.<namespace>.<zone>`` SRV → the port, targeting the A name.
Both carry the workload's name as their unique last label, so the records of one workload are
found (and removed) by that label even after its service name changed.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from persys.resources.model import Resource
from persys.store.keys import SKYDNS_PREFIX

DEFAULT_TTL = 30
DEFAULT_PRIORITY = 10
DEFAULT_WEIGHT = 10


def labels(name: str) -> list[str]:
    """``Web.Default.persys.local.`` → ``["web", "default", "persys", "local"]`` (lower case)."""
    return [label for label in name.strip().rstrip(".").lower().split(".") if label]


def name_to_key(name: str) -> str:
    """The etcd key of a DNS name: ``/skydns/`` + its labels reversed."""
    return SKYDNS_PREFIX + "/".join(reversed(labels(name)))


def key_to_name(key: str) -> str:
    """The DNS name (no trailing dot) of an etcd key under ``/skydns/``; the opposite of name_to_key."""
    if not key.startswith(SKYDNS_PREFIX):
        raise ValueError(f"{key!r} is not a SkyDNS key")
    return ".".join(reversed([p for p in key[len(SKYDNS_PREFIX):].split("/") if p]))


def zone_prefix(zone: str) -> str:
    """The prefix of every record inside ``zone`` (with the trailing slash)."""
    return name_to_key(zone) + "/"


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class SkyRecord:
    """One SkyDNS service record: the etcd ``key`` and the fields of its JSON value."""

    key: str
    host: str
    port: int = 0
    priority: int = DEFAULT_PRIORITY
    weight: int = DEFAULT_WEIGHT
    ttl: int = DEFAULT_TTL
    targetstrip: int = 0

    @property
    def name(self) -> str:
        """The DNS name of the key itself (including its unique last label)."""
        return key_to_name(self.key)

    @property
    def target(self) -> str:
        """The SRV target: ``host`` when it is a name, else the key's name minus ``targetstrip`` labels."""
        if not is_ip(self.host):
            return self.host.rstrip(".").lower()
        parts = self.name.split(".")
        if 0 < self.targetstrip < len(parts):
            parts = parts[self.targetstrip:]
        return ".".join(parts)

    def encode(self) -> bytes:
        """The JSON value CoreDNS reads (zero fields omitted, as Go's ``omitempty`` does)."""
        data: dict[str, Any] = {"host": self.host, "port": self.port, "priority": self.priority,
                                "weight": self.weight, "ttl": self.ttl, "targetstrip": self.targetstrip}
        return json.dumps({k: v for k, v in data.items() if v}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, key: str, value: bytes) -> SkyRecord:
        """Parse a stored value; raises ValueError when it is not a SkyDNS service."""
        try:
            data = json.loads(value)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{key}: not JSON: {e}") from e
        if not isinstance(data, dict) or not isinstance(data.get("host", ""), str):
            raise ValueError(f"{key}: not a SkyDNS service object")
        try:
            return cls(key=key, host=str(data.get("host") or ""), port=int(data.get("port") or 0),
                       priority=int(data.get("priority") or 0), weight=int(data.get("weight") or 0),
                       ttl=int(data.get("ttl") or 0), targetstrip=int(data.get("targetstrip") or 0))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{key}: bad field: {e}") from e


def service_name(service: str, namespace: str, zone: str) -> str:
    """``<service>.<namespace>.<zone>``: the A name of a workload service."""
    return f"{service}.{namespace}.{zone.rstrip('.')}".lower()


def srv_name(port_name: str, protocol: str, base: str) -> str:
    """``_<port name>._<protocol>.<base>``."""
    return f"_{port_name}._{protocol}.{base}".lower()


def node_ip(node: Resource) -> str:
    """The HOST part of a Node's ``spec.address`` (``HOST:PORT``, ``[v6]:PORT`` or a bare host)."""
    address = str(node.spec.get("address") or "").strip()
    address = address.removeprefix("http://").removeprefix("https://").rstrip("/")
    if address.startswith("["):
        return address[1:].partition("]")[0]
    host, sep, port = address.rpartition(":")
    return host if sep and port.isdigit() and ":" not in host else address


def service_port(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The ``spec.ports`` entry ``spec.service.port`` names (by name or containerPort; first when unset)."""
    ports: list[dict[str, Any]] = list(spec.get("ports") or [])
    wanted = (spec.get("service") or {}).get("port")
    if wanted is None or wanted == "":
        return ports[0] if ports else None
    for port in ports:
        if port.get("name") == str(wanted) or str(port.get("containerPort")) == str(wanted):
            return port
    return None


def workload_records(workload: Resource, ip: str, zone: str, ttl: int = DEFAULT_TTL) -> list[SkyRecord]:
    """The A and SRV records a Running workload with ``spec.service`` should have, its node at ``ip``."""
    service = workload.spec.get("service") or {}
    if not service.get("name") or not ip:
        return []
    owner = workload.metadata.name
    base = service_name(service["name"], workload.metadata.namespace or "default", zone)
    records = [SkyRecord(key=f"{name_to_key(base)}/{owner}", host=ip, ttl=ttl)]
    port = service_port(workload.spec)
    if port is not None:
        number = int(port.get("hostPort") or port["containerPort"])
        port_name = str(port.get("name") or number)
        srv = srv_name(port_name, str(port.get("protocol") or "tcp"), base)
        # the key's own name is <owner>._<port>._<proto>.<base>: strip 3 labels so the target is <base>
        records.append(SkyRecord(key=f"{name_to_key(srv)}/{owner}", host=ip, port=number, ttl=ttl,
                                 targetstrip=3))
    return records


def owner_of(key: str, zone: str) -> tuple[str, str] | None:
    """(namespace, workload name) of a workload record key in ``zone``; None for other records."""
    prefix = zone_prefix(zone)
    if not key.startswith(prefix):
        return None
    parts = key[len(prefix):].split("/")
    # <namespace>/<service>/<owner> (A) or <namespace>/<service>/_<proto>/_<port>/<owner> (SRV)
    if len(parts) == 3 or (len(parts) == 5 and parts[2].startswith("_") and parts[3].startswith("_")):
        if not parts[0].startswith("_"):
            return parts[0], parts[-1]
    return None
