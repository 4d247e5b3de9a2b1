"""The ``operators`` role: reads everything but Secrets; writes Workloads, Events, Leases and custom kinds;
never Nodes or Secrets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from persys.errors import Forbidden
from persys.resources import REGISTRY
from tests.operator.harness import IDENTITY, operator_client
from tests.support.cluster import RunningApi
from tests.support.workloads import manifest

NODE = {"apiVersion": "persys.dev/v1", "kind": "Node", "metadata": {"name": "n1"}, "spec": {"address": "127.0.0.1"}}
SECRET = {"apiVersion": "persys.dev/v1", "kind": "Secret", "metadata": {"name": "token"}, "data": {"k": "v"}}
LEASE = {"apiVersion": "persys.dev/v1", "kind": "Lease", "metadata": {"name": "lock"}, "spec": {"holderIdentity": "me"}}
EVENT = {"apiVersion": "persys.dev/v1", "kind": "Event", "metadata": {"name": "ev"},
         "spec": {"involvedObject": {"kind": "Workload", "name": "web"}, "reason": "Tested"}}


def test_pki_issues_an_operators_certificate(api: RunningApi) -> None:
    cert = x509.load_pem_x509_certificate(api.pki.cert(IDENTITY).read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "persys:operators"
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == IDENTITY


async def forbidden(call: Callable[[], Awaitable[Any]]) -> None:
    with pytest.raises(Forbidden):
        await call()


async def test_operators_read_all_but_secrets_and_write_what_they_manage(api: RunningApi) -> None:
    async with api.client() as admin, operator_client(api) as op:
        for document in (NODE, SECRET, manifest("web")):
            await admin.apply_raw(document)
        # reads
        assert [n.metadata.name for n in (await op.list("Node"))[0]] == ["n1"]
        assert (await op.get("Workload", "web")).metadata.name == "web"
        await op.list("Event")
        await forbidden(lambda: op.list("Secret"))
        await forbidden(lambda: op.get("Secret", "token"))
        # writes that are theirs
        workload, _ = await op.apply_raw(manifest("made-by-operator"))
        await op.update_status("Workload", "made-by-operator", {"message": "mine"})
        await op.patch("Workload", "made-by-operator", {"metadata": {"labels": {"by": "operator"}}})
        await op.apply_raw(EVENT)
        await op.apply_raw(LEASE)
        await op.delete("Lease", "lock")
        await op.delete("Workload", "made-by-operator")
        # writes that are not
        await forbidden(lambda: op.apply_raw(SECRET))
        await forbidden(lambda: op.delete("Secret", "token"))
        await forbidden(lambda: op.apply_raw({**NODE, "spec": {"address": "10.0.0.1"}}))
        await forbidden(lambda: op.patch("Node", "n1", {"spec": {"unschedulable": True}}))
        await forbidden(lambda: op.update_status("Node", "n1", {"runtime": "fake"}, namespace=""))
        await forbidden(lambda: op.delete("Node", "n1"))
        assert workload.metadata.name == "made-by-operator"
        assert (await admin.get("Node", "n1", namespace="")).spec["address"] == "127.0.0.1"
        assert REGISTRY.get("Secret").sensitive
