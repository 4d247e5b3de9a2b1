"""The built-in kinds (Workload, Node, Event, Secret, Lease, ResourceDefinition, RoleBinding,
ClusterRoleBinding) and the default registry."""

from __future__ import annotations

import posixpath
from typing import Any

from persys.errors import Cause
from persys.resources.certificates import BOOTSTRAP_TOKEN, CERTIFICATE_SIGNING_REQUEST
from persys.resources.columns import age
from persys.resources.definitions import RESOURCE_DEFINITION
from persys.resources.deployments import deployment_kind
from persys.resources.formats import check_inner_path
from persys.resources.lease import LEASE
from persys.resources.model import Resource
from persys.resources.phase import ContainerState, DesiredState, Phase
from persys.resources.probes import PROBES, SERVICES, probe_checks
from persys.resources.rbac import CLUSTER_ROLE_BINDING, ROLE_BINDING
from persys.resources.registry import LABELS, Kind, Registry
from persys.resources.schema import Schema

STRING: Schema = {"type": "string"}
STRINGS: Schema = {"type": "array", "items": STRING}
ENV: Schema = {"type": "map", "values": {"type": "string", "format": "text"}, "keyFormat": "envname"}
PORT: Schema = {"type": "integer", "minimum": 1, "maximum": 65535}
TIME: Schema = {"type": "string", "nullable": True}
INT_OR_NULL: Schema = {"type": "integer", "nullable": True}
CONDITIONS: Schema = {"type": "array", "items": {"type": "object", "properties": {
    "type": STRING, "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
    "reason": STRING, "message": STRING, "lastTransitionTime": TIME,
}, "required": ["type", "status"]}}
RESOURCES: Schema = {"type": "object", "properties": {  # what a workload requests: bounded
    "cpu": {"type": "string", "format": "cpu"}, "memory": {"type": "string", "format": "memory"},
}}
CAPACITY: Schema = {"type": "object", "properties": {  # what a node reports: any size
    "cpu": {"type": "string", "format": "cpucapacity"}, "memory": {"type": "string", "format": "memorycapacity"},
}}
# a day: long enough for any back-off, short enough that every timer and timestamp stays in range;
# 0 is allowed and means "restart at once" (bench/e2e.py measures self-healing that way)
BACKOFF_SECONDS: Schema = {"type": "number", "minimum": 0, "maximum": 86400}

WORKLOAD_PHASES = [phase.value for phase in Phase]

WORKLOAD_SPEC: Schema = {"type": "object", "properties": {
    "type": {"type": "string", "enum": ["container", "compose"], "default": "container"},
    "image": {"type": "string", "format": "image"},
    "command": STRINGS,
    "args": STRINGS,
    "env": ENV,
    "workingDir": {"type": "string", "format": "abspath"},
    "ports": {"type": "array", "items": {"type": "object", "properties": {
        "name": {"type": "string", "format": "dns1123"},
        "containerPort": PORT,
        "hostPort": PORT,
        "protocol": {"type": "string", "enum": ["tcp", "udp"], "default": "tcp"},
    }, "required": ["containerPort"]}},
    # host by default: this is the network every node has (dockerd here runs --bridge=none)
    "network": {"type": "string", "default": "host"},
    "resources": {**RESOURCES, "default": {}},
    "restartPolicy": {"type": "string", "enum": ["Always", "OnFailure", "Never"], "default": "Always"},
    "desiredState": {"type": "string", "enum": [state.value for state in DesiredState],
                     "default": DesiredState.RUNNING.value},
    "nodeSelector": {**LABELS, "default": {}},
    "nodeName": {"type": "string", "default": ""},
    "service": {"type": "object", "properties": {
        "name": {"type": "string", "format": "dns1123"}, "port": {"type": "any"},
    }, "required": ["name"]},
    "backoff": {"type": "object", "properties": {"initialSeconds": BACKOFF_SECONDS, "maxSeconds": BACKOFF_SECONDS}},
    "compose": {"type": "object", "properties": {
        "repo": {"type": "string", "format": "gitrepo"}, "ref": {"type": "string", "format": "gitref", "default": ""},
        # the commit to deploy (a push sets it); absent or "" deploys the tip of ref as found when the app is
        # set up. No default: a default would add the field to every stored app, change its spec hash and
        # replace it once
        "revision": {"type": "string", "format": "gitcommit"},
        "path": {"type": "string", "format": "innerpath", "default": "."},
        "file": {"type": "string", "default": ""}, "authSecret": {"type": "string", "default": ""},
        "build": {"type": "string", "enum": ["auto", "always", "never"], "default": "auto"},
        "services": SERVICES,  # per service of the compose file: its probes
    }, "required": ["repo"]},
    **PROBES,
}}

WORKLOAD_STATUS: Schema = {"type": "object", "properties": {
    "phase": {"type": "string", "enum": WORKLOAD_PHASES},
    "nodeName": STRING, "containerID": STRING, "restarts": {"type": "integer", "minimum": 0},
    "exitCode": INT_OR_NULL, "startedAt": TIME, "finishedAt": TIME, "message": STRING,
    "observedGeneration": {"type": "integer"}, "specHash": STRING, "deployedRevision": STRING,
    "conditions": CONDITIONS,
    "lastReconcile": {"type": "object", "properties": {
        "time": TIME, "action": STRING, "result": STRING, "message": STRING}},
    "backoffUntil": TIME, "lastAction": {"type": "object", "properties": {
        "action": STRING, "time": TIME, "generation": {"type": "integer"}, "specHash": STRING,
        "operation": STRING}},
    "lastSeenTime": TIME,
    # written by the status controller (what the agent reports) and the reconciler (crash loop count)
    "containerState": {"type": "string", "enum": [state.value for state in ContainerState]},
    "containerReason": STRING, "containerMessage": STRING, "consecutiveFailures": {"type": "integer", "minimum": 0},
    "containerReady": {"type": "boolean", "nullable": True}, "probeMessage": STRING,  # the agent's probes
}}


def _workload_checks(spec: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    if spec["type"] == "container" and not spec.get("image"):
        causes.append(Cause("spec.image", "required for type container"))
    if spec["type"] == "compose" and not spec.get("compose"):
        causes.append(Cause("spec.compose", "required for type compose"))
    if spec["type"] == "container" and spec.get("compose"):
        causes.append(Cause("spec.compose", "only for type compose"))
    names: set[str] = set()
    host_ports: set[tuple[int, str]] = set()
    for i, port in enumerate(spec.get("ports", [])):
        if port.get("name"):
            if port["name"] in names:
                causes.append(Cause(f"spec.ports[{i}].name", f"duplicate port name {port['name']!r}"))
            names.add(port["name"])
        if "hostPort" in port:
            key = (port["hostPort"], port["protocol"])
            if key in host_ports:
                causes.append(Cause(f"spec.ports[{i}].hostPort", f"duplicate host port {port['hostPort']}"))
            host_ports.add(key)
    service = spec.get("service")
    if service and "port" in service:
        wanted = service["port"]
        known = names | {str(p["containerPort"]) for p in spec.get("ports", [])}
        if str(wanted) not in known:
            causes.append(Cause("spec.service.port", f"{wanted!r} names no port in spec.ports"))
    return causes + _backoff_checks(spec.get("backoff") or {}) + _compose_checks(spec.get("compose") or {}) \
        + probe_checks(spec)


def _backoff_checks(backoff: dict[str, Any]) -> list[Cause]:
    first, most = backoff.get("initialSeconds"), backoff.get("maxSeconds")
    if first is not None and most is not None and first > most:
        return [Cause("spec.backoff.initialSeconds", f"must not exceed spec.backoff.maxSeconds ({most})")]
    return []


def _compose_checks(compose: dict[str, Any]) -> list[Cause]:
    """The compose file is found relative to ``path``: together they must stay inside the checkout."""
    if not compose.get("file"):
        return []
    msg = check_inner_path(posixpath.join(str(compose.get("path") or "."), compose["file"]))
    return [Cause("spec.compose.file", msg)] if msg else []


def condition(obj: Resource, kind: str) -> str:
    for cond in obj.status.get("conditions", []):
        if cond.get("type") == kind:
            return str(cond.get("status", "Unknown"))
    return "Unknown"


def _node_status(obj: Resource) -> str:
    ready = {"True": "Ready", "False": "NotReady"}.get(condition(obj, "Ready"), "Unknown")
    return f"{ready},SchedulingDisabled" if obj.spec.get("unschedulable") else ready


WORKLOAD = Kind(
    kind="Workload", plural="workloads", namespaced=True, short_names=("wl",),
    description="A container or a compose app that Persys runs on a node and keeps in its desired state.",
    spec_schema=WORKLOAD_SPEC, status_schema=WORKLOAD_STATUS, cross_checks=(_workload_checks,),
    server_fields=("nodeName",),
    columns=(
        ("NAME", lambda o: o.metadata.name),
        ("PHASE", lambda o: str(o.status.get("phase", Phase.PENDING))),
        ("DESIRED", lambda o: str(o.spec.get("desiredState", ""))),
        ("NODE", lambda o: str(o.status.get("nodeName") or o.spec.get("nodeName") or "<none>")),
        ("RESTARTS", lambda o: str(o.status.get("restarts", 0))),
        ("AGE", age),
    ),
    wide_columns=(
        ("IMAGE", lambda o: str(o.spec.get("image") or (o.spec.get("compose") or {}).get("repo", ""))),
        ("CONTAINER", lambda o: str(o.status.get("containerID", ""))[:12]),
        ("MESSAGE", lambda o: str(o.status.get("message", ""))),
    ),
)

NODE = Kind(
    kind="Node", plural="nodes", namespaced=False, short_names=("no",),
    description="A machine whose agent runs workloads; it registers itself and reports its capacity.",
    spec_schema={"type": "object", "properties": {
        "address": STRING, "labels": {**LABELS, "default": {}},
        "unschedulable": {"type": "boolean", "default": False},
    }},
    status_schema={"type": "object", "properties": {
        "capacity": CAPACITY, "allocatable": CAPACITY, "conditions": CONDITIONS,
        "lastHeartbeatTime": TIME, "runtime": STRING, "agentVersion": STRING,
    }},
    columns=(
        ("NAME", lambda o: o.metadata.name),
        ("STATUS", _node_status),
        ("ADDRESS", lambda o: str(o.spec.get("address", ""))),
        ("RUNTIME", lambda o: str(o.status.get("runtime", ""))),
        ("AGE", age),
    ),
    wide_columns=(
        ("CPU", lambda o: str((o.status.get("capacity") or {}).get("cpu", ""))),
        ("MEMORY", lambda o: str((o.status.get("capacity") or {}).get("memory", ""))),
        ("LABELS", lambda o: ",".join(f"{k}={v}" for k, v in sorted(o.spec.get("labels", {}).items()))),
    ),
)

EVENT = Kind(
    kind="Event", plural="events", namespaced=True, short_names=("ev",), lease_ttl=3600,
    description="Something that happened to an object (it expires after an hour).",
    status_subresource=False,
    spec_schema={"type": "object", "properties": {
        "involvedObject": {"type": "object", "properties": {
            "kind": STRING, "namespace": STRING, "name": STRING, "uid": STRING}, "required": ["kind", "name"]},
        "type": {"type": "string", "enum": ["Normal", "Warning"], "default": "Normal"},
        "reason": STRING, "message": {"type": "string", "default": ""},
        "count": {"type": "integer", "minimum": 1, "default": 1},
        "firstTimestamp": TIME, "lastTimestamp": TIME, "source": {"type": "string", "default": ""},
    }, "required": ["involvedObject", "reason"]},
    columns=(
        ("LAST SEEN", lambda o: str(o.spec.get("lastTimestamp") or "")[11:19]),
        ("TYPE", lambda o: str(o.spec.get("type", ""))),
        ("REASON", lambda o: str(o.spec.get("reason", ""))),
        ("OBJECT", lambda o: f"{str(o.spec['involvedObject'].get('kind', '')).lower()}/"
                             f"{o.spec['involvedObject'].get('name', '')}"),
        ("COUNT", lambda o: str(o.spec.get("count", 1))),
        ("MESSAGE", lambda o: str(o.spec.get("message", ""))),
    ),
)

SECRET = Kind(
    kind="Secret", plural="secrets", namespaced=True, spec_field="data", sensitive=True,
    description="Values such as git tokens, never printed unless asked for.",
    status_subresource=False,
    spec_schema={"type": "map", "values": STRING},
    columns=(
        ("NAME", lambda o: o.metadata.name),
        ("KEYS", lambda o: str(len(o.spec))),
        ("AGE", age),
    ),
)

WEBHOOK_DELIVERY = Kind(
    kind="WebhookDelivery", plural="webhookdeliveries", namespaced=True, lease_ttl=3 * 86400,
    description="A webhook delivery the gateway received, kept three days so that a redelivery is not acted on twice.",
    status_subresource=False,
    spec_schema={"type": "object", "properties": {
        "source": STRING, "event": STRING, "repository": STRING, "receivedAt": TIME,
    }, "required": ["source", "event"]},
    columns=(
        ("NAME", lambda o: o.metadata.name),
        ("EVENT", lambda o: str(o.spec.get("event", ""))),
        ("REPOSITORY", lambda o: str(o.spec.get("repository", ""))),
        ("AGE", age),
    ),
)

DEPLOYMENT = deployment_kind(WORKLOAD_SPEC, _workload_checks)


def default_registry() -> Registry:
    """A registry with the built-in kinds; user-defined kinds are registered on top."""
    registry = Registry()
    for kind in (WORKLOAD, NODE, EVENT, SECRET, LEASE, RESOURCE_DEFINITION, ROLE_BINDING, CLUSTER_ROLE_BINDING,
                 WEBHOOK_DELIVERY, DEPLOYMENT):
        registry.register(kind)
    for kind in (BOOTSTRAP_TOKEN, CERTIFICATE_SIGNING_REQUEST):
        registry.register(kind)
    return registry


REGISTRY = default_registry()
