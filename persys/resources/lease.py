"""The ``Lease`` kind (persys.dev/v1): a lock that processes outside the control plane hold through the API.

The built-in controllers elect their leader on an etcd lease; operators talk to the API only,
so they elect theirs on a Lease object, as Kubernetes does (coordination.k8s.io Lease). The
object holds no mechanism of its own: ``holderIdentity`` names the holder, ``renewTime`` says
when it last renewed, ``leaseDurationSeconds`` how long others wait after that before taking
over. Every change is a compare-and-swap on ``metadata.resourceVersion``, which is what makes
it a lock (see ``persys.operator.leader``).
"""

from __future__ import annotations

from persys.resources.model import Resource
from persys.resources.registry import Kind
from persys.resources.schema import Schema

_TIME: Schema = {"type": "string", "nullable": True}

LEASE_SPEC: Schema = {"type": "object", "properties": {
    "holderIdentity": {"type": "string", "default": ""},
    "leaseDurationSeconds": {"type": "integer", "minimum": 1, "maximum": 3600, "default": 15},
    "acquireTime": _TIME,
    "renewTime": _TIME,
    "leaseTransitions": {"type": "integer", "minimum": 0, "default": 0},
}}


def _holder(obj: Resource) -> str:
    return str(obj.spec.get("holderIdentity") or "<none>")


LEASE = Kind(
    kind="Lease", plural="leases", namespaced=True, spec_schema=LEASE_SPEC, status_subresource=False,
    columns=(
        ("NAME", lambda o: o.metadata.name),
        ("HOLDER", _holder),
        ("RENEWED", lambda o: str(o.spec.get("renewTime") or "")),
        ("TRANSITIONS", lambda o: str(o.spec.get("leaseTransitions", 0))),
    ),
)
