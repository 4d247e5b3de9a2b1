"""The csr-signer: approves, denies and signs CertificateSigningRequests with the cluster CA.

Each CSR is judged by ``persys.controllers.csrdecisions.decide`` against the BootstrapToken it came
with (read from etcd, not the cache: a token made a moment ago must not look deleted) and the Node of
the name it asks for. A request the token allows is approved and signed in one status write; one it
does not allow is denied, with the reason in the ``Denied`` condition and in a Warning Event; a node
renewing its own certificate (``persys.renewal``) is approved like a token's request; any other
request without a token waits for ``persys certificate approve|deny``. The certificate's CN is the request's,
its O the CSR's role, its SANs those the decision allowed (for a node: its name and addresses).

Every CSR decided gets one span (``csr.sign``, a child of the trace the joining node's request carried,
via the ``persys.dev/traceparent`` annotation the API sets) and is counted in
``persys_csr_total{outcome}``; issued ones also in ``persys_csr_issue_seconds``, the time from the
request's creation to its certificate.
"""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path
from typing import Any

from opentelemetry.trace import Span
from prometheus_client import Counter, Histogram

from persys.controllers.conditions import set_condition
from persys.controllers.csrdecisions import Action, Decision, decide
from persys.controllers.events import NORMAL, WARNING, EventRecorder
from persys.errors import NotFound
from persys.observability import tracing
from persys.resources.certificates import APPROVED, BOOTSTRAP_TOKEN, CERTIFICATE_SIGNING_REQUEST, DENIED, TRACEPARENT
from persys.resources.kinds import NODE
from persys.resources.model import ObjectKey, Resource
from persys.runtime.clock import from_iso, to_iso
from persys.runtime.controller import Controller, Result
from persys.security import csr as csrs

ISSUED, CERTIFICATE_DENIED = "CertificateIssued", "CertificateDenied"

CSR_TOTAL = Counter("persys_csr_total", "CertificateSigningRequests decided by the csr-signer", ["outcome"])
CSR_ISSUE = Histogram("persys_csr_issue_seconds", "Seconds from a CSR's creation to its certificate",
                      buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600))


class CsrSigner(Controller):
    """Decides and signs CertificateSigningRequests with the CA at ``ca_cert`` / ``ca_key``."""

    kind = CERTIFICATE_SIGNING_REQUEST.kind
    name = "csr-signer"
    workers = 4
    resync_period = 300.0

    def __init__(self, ca_cert: Path, ca_key: Path, lifetime: float) -> None:
        super().__init__()
        self.ca_cert, self.ca_key = ca_cert, ca_key
        self.lifetime = datetime.timedelta(seconds=lifetime)

    def declare(self) -> None:
        self.nodes = self.informer(NODE.kind)
        self.recorder = EventRecorder(self.store, self.name, clock=self.clock)

    async def reconcile(self, key: ObjectKey) -> Result:
        request = self.cache.get(key)
        if request is None:
            return Result()
        try:
            info: csrs.RequestInfo | None = csrs.inspect(str(request.spec.get("request", "")))
        except csrs.BadRequestPem:
            info = None
        token = await self._token(str(request.spec.get("token") or ""))
        node = self.nodes.get(ObjectKey(NODE.kind, "", info.common_name)) if info is not None else None
        decision = decide(request, info, token, node, self.clock.now())
        if decision.action in (Action.NONE, Action.WAIT):
            return Result()
        parent = tracing.extract({"traceparent": request.metadata.annotations.get(TRACEPARENT, "")})
        with tracing.tracer("persys.controllers").start_as_current_span("csr.sign", context=parent, attributes={
                "persys.csr": request.metadata.name, "persys.csr.role": str(request.spec.get("role", "")),
                "persys.csr.username": str(request.spec.get("username", "")),
                "persys.csr.cn": info.common_name if info else ""}) as span:
            if decision.action == Action.DENY:
                await self._deny(request, decision, span)
            else:
                assert info is not None
                await self._sign(request, info, decision, span)
        return Result()

    async def _token(self, token_id: str) -> Resource | None:
        if not token_id:
            return None
        try:
            return await self.store.get(BOOTSTRAP_TOKEN.kind, "", token_id)
        except NotFound:
            return None

    async def _deny(self, request: Resource, decision: Decision, span: Span) -> None:
        status = dict(request.status)
        set_condition(status, DENIED, "True", decision.reason, decision.message, to_iso(self.clock.now()))
        await self._write(request, status)
        span.set_attributes({"persys.csr.outcome": "denied", "persys.csr.reason": decision.reason})
        CSR_TOTAL.labels("denied").inc()
        self.log.warning("certificate request denied", csr=request.metadata.name, reason=decision.reason,
                         message=decision.message)
        await self.recorder.record(request, WARNING, CERTIFICATE_DENIED, f"{decision.reason}: {decision.message}",
                                   fence=self.fence)

    async def _sign(self, request: Resource, info: csrs.RequestInfo, decision: Decision, span: Span) -> None:
        role = str(request.spec.get("role") or "agents")
        pem = await asyncio.to_thread(
            csrs.sign, str(request.spec["request"]), self.ca_cert, self.ca_key, common_name=info.common_name,
            organization=f"persys:{role}", sans=decision.sans, lifetime=self.lifetime)
        status: dict[str, Any] = dict(request.status)
        now = self.clock.now()
        if decision.auto_approved:
            set_condition(status, APPROVED, "True", decision.reason, decision.message, to_iso(now))
        status["certificate"] = pem.decode()
        await self._write(request, status)
        span.set_attributes({"persys.csr.outcome": "issued", "persys.csr.reason": decision.reason or "Approved",
                             "persys.csr.sans": ",".join(decision.sans)})
        CSR_TOTAL.labels("issued").inc()
        created = from_iso(request.metadata.creationTimestamp)
        if created is not None:
            CSR_ISSUE.observe(max(now - created, 0.0))
        self.log.info("certificate issued", csr=request.metadata.name, cn=info.common_name, role=role,
                      sans=list(decision.sans))
        await self.recorder.record(request, NORMAL, ISSUED, f"certificate for {info.common_name!r} (role {role}, "
                                   f"{decision.reason or 'approved by hand'}) valid {self.lifetime}", fence=self.fence)

    async def _write(self, request: Resource, status: dict[str, Any]) -> None:
        """Status write with CAS on the version decided on: a CSR changed meanwhile is decided again."""
        await self.store.update_status(self.kind, "", request.metadata.name, status,
                                       resource_version=request.metadata.resourceVersion or "", fence=self.fence)
