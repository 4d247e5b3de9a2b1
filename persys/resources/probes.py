"""Health probes of a Workload: their schema, the checks the API makes, and ``Probe``, what agents run.

A Workload (or each service of a compose workload, under ``spec.compose.services.<name>``) may
have a ``livenessProbe``, ``readinessProbe`` and ``startupProbe``, each with exactly one handler:
``httpGet`` {path, port, scheme}, ``tcpSocket`` {port} or ``exec`` {command}, and Kubernetes'
timings and defaults (periodSeconds 10, timeoutSeconds 1, failureThreshold 3, successThreshold 1,
initialDelaySeconds 0). A port is a number, or for a container workload the name of one of its
``spec.ports``; ``probes_of`` resolves names, so agents only ever see numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from persys.errors import Cause
from persys.resources.schema import Schema

KINDS = ("startupProbe", "livenessProbe", "readinessProbe")
HANDLERS = ("httpGet", "tcpSocket", "exec")
MAX_SECONDS = 86_400

_PORT: Schema = {"type": "any"}  # a number 1-65535 or a port name: checked in ``probe_checks``


def _seconds(default: int, minimum: int) -> Schema:
    return {"type": "integer", "minimum": minimum, "maximum": MAX_SECONDS, "default": default}


PROBE: Schema = {"type": "object", "properties": {
    "httpGet": {"type": "object", "properties": {
        "path": {"type": "string", "default": "/"}, "port": _PORT,
        "scheme": {"type": "string", "enum": ["HTTP", "HTTPS"], "default": "HTTP"},
    }, "required": ["port"]},
    "tcpSocket": {"type": "object", "properties": {"port": _PORT}, "required": ["port"]},
    "exec": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}},
             "required": ["command"]},
    "initialDelaySeconds": _seconds(0, 0),
    "periodSeconds": _seconds(10, 1),
    "timeoutSeconds": _seconds(1, 1),
    "failureThreshold": {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 3},
    "successThreshold": {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 1},
    # how long a container that failed its liveness or startup probe gets to stop (absent: the agent's 10 s)
    "terminationGracePeriodSeconds": {"type": "integer", "minimum": 0, "maximum": 3600},
}}

PROBES: dict[str, Schema] = {kind: PROBE for kind in KINDS}
"""The probe fields of a Workload spec (and of each entry of ``spec.compose.services``)."""

SERVICES: Schema = {"type": "map", "keyFormat": "composeservice", "values": {"type": "object", "properties": PROBES}}


def probe_checks(spec: dict[str, Any]) -> list[Cause]:
    """What the schema cannot say: one handler per probe, ports in range or named, thresholds."""
    causes: list[Cause] = []
    names = {str(p["name"]): int(p["containerPort"]) for p in spec.get("ports") or [] if p.get("name")}
    compose = spec.get("type") == "compose"
    for kind in KINDS:
        if kind in spec:
            if compose:
                causes.append(Cause(f"spec.{kind}", "a compose workload has probes per service, in "
                                                    f"spec.compose.services.<service>.{kind}"))
            else:
                causes += _check(spec[kind], f"spec.{kind}", kind, names)
    for service, probes in ((spec.get("compose") or {}).get("services") or {}).items():
        for kind in KINDS:
            if kind in probes:
                causes += _check(probes[kind], f"spec.compose.services.{service}.{kind}", kind, {})
    return causes


def _check(probe: dict[str, Any], path: str, kind: str, names: dict[str, int]) -> list[Cause]:
    handlers = [h for h in HANDLERS if h in probe]
    if len(handlers) != 1:
        found = f"has {' and '.join(handlers)}" if handlers else "has none"
        return [Cause(path, f"needs exactly one handler, httpGet, tcpSocket or exec; {found}")]
    handler = handlers[0]
    causes: list[Cause] = []
    if handler == "exec" and not probe["exec"]["command"]:
        causes.append(Cause(f"{path}.exec.command", "must not be empty"))
    if handler in ("httpGet", "tcpSocket"):
        port = probe[handler]["port"]
        if msg := _port_problem(port, names):
            causes.append(Cause(f"{path}.{handler}.port", msg))
    if handler == "httpGet" and not str(probe["httpGet"]["path"]).startswith("/"):
        causes.append(Cause(f"{path}.httpGet.path", "must start with /"))
    if kind != "readinessProbe" and probe["successThreshold"] != 1:
        causes.append(Cause(f"{path}.successThreshold", f"must be 1 for a {kind}"))
    if kind == "readinessProbe" and "terminationGracePeriodSeconds" in probe:
        causes.append(Cause(f"{path}.terminationGracePeriodSeconds", "only for a liveness or startup probe"))
    return causes


def _port_problem(port: Any, names: dict[str, int]) -> str:
    if isinstance(port, bool) or not isinstance(port, (int, str)):
        return f"must be a port number or a port name, not {type(port).__name__}"
    if isinstance(port, int):
        return "" if 1 <= port <= 65535 else f"{port} is out of range 1-65535"
    if port not in names:
        known = ", ".join(sorted(names)) or "none"
        return f"{port!r} names no port in spec.ports (named ports: {known})"
    return ""


@dataclass(frozen=True)
class Probe:
    """One probe as an agent runs it: a handler with every timing filled in and a numeric port."""

    kind: str            # startupProbe | livenessProbe | readinessProbe
    handler: str         # httpGet | tcpSocket | exec
    port: int = 0
    path: str = "/"
    scheme: str = "HTTP"
    command: tuple[str, ...] = ()
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1
    grace: float | None = None  # seconds a container failing this probe gets to stop (None: the agent's)

    @property
    def label(self) -> str:
        """How messages name it: ``Liveness probe``."""
        return self.kind.removesuffix("Probe").capitalize() + " probe"

    def describe(self) -> str:
        """What it does: ``HTTP GET http://127.0.0.1:8080/healthz``, ``TCP 127.0.0.1:5432``, ``exec [cat, /x]``."""
        if self.handler == "httpGet":
            return f"{self.scheme} GET {self.scheme.lower()}://127.0.0.1:{self.port}{self.path}"
        if self.handler == "tcpSocket":
            return f"TCP 127.0.0.1:{self.port}"
        return f"exec {list(self.command)}"

    @classmethod
    def parse(cls, kind: str, raw: dict[str, Any], names: dict[str, int] | None = None) -> Probe:
        handler = next(h for h in HANDLERS if h in raw)
        body = raw[handler]
        port = body.get("port", 0) if isinstance(body, dict) else 0
        if isinstance(port, str):
            port = (names or {}).get(port, 0)
        return cls(kind=kind, handler=handler, port=int(port), path=str(body.get("path") or "/"),
                   scheme=str(body.get("scheme") or "HTTP"), command=tuple(body.get("command") or ()),
                   initial_delay=float(raw.get("initialDelaySeconds", 0)), period=float(raw.get("periodSeconds", 10)),
                   timeout=float(raw.get("timeoutSeconds", 1)), failure_threshold=int(raw.get("failureThreshold", 3)),
                   success_threshold=int(raw.get("successThreshold", 1)),
                   grace=float(raw["terminationGracePeriodSeconds"]) if "terminationGracePeriodSeconds" in raw
                   else None)


def probes_of(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """service → {kind: probe as JSON with numeric ports}; a container workload's service is ``""``.

    Only services with at least one probe appear; what agents store in a label or meta file.
    """
    names = {str(p["name"]): int(p["containerPort"]) for p in spec.get("ports") or [] if p.get("name")}
    sources: dict[str, dict[str, Any]] = {"": spec} if spec.get("type", "container") == "container" else \
        dict((spec.get("compose") or {}).get("services") or {})
    out: dict[str, dict[str, Any]] = {}
    for service, source in sources.items():
        found = {}
        for kind in KINDS:
            raw = source.get(kind)
            if isinstance(raw, dict) and any(h in raw for h in HANDLERS):
                found[kind] = _resolved(raw, names)
        if found:
            out[service] = found
    return out


def _resolved(raw: dict[str, Any], names: dict[str, int]) -> dict[str, Any]:
    out = dict(raw)
    for handler in ("httpGet", "tcpSocket"):
        if isinstance(out.get(handler), dict) and isinstance(out[handler].get("port"), str):
            out[handler] = {**out[handler], "port": names.get(out[handler]["port"], 0)}
    return out


def parse_probes(raw: dict[str, Any]) -> dict[str, Probe]:
    """{kind: Probe} from one service's entry of ``probes_of``."""
    return {kind: Probe.parse(kind, value) for kind, value in raw.items() if kind in KINDS and isinstance(value, dict)}
