"""Access by namespace over mTLS: a gateway certificate with impersonation headers, decided by the
RoleBindings and ClusterRoleBindings the API server caches; impersonation by anyone else refused."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from persys.client import ApiClient
from persys.errors import BadRequest, Forbidden
from persys.security import impersonation, pki
from persys.security.paths import HomePaths
from tests.support.cluster import RunningApi, raw_request
from tests.support.eventually import eventually
from tests.support.workloads import manifest

OCTOCAT = ("github:octocat", ("github-org:acme", "github-team:acme/ops"))
MONA = ("github:mona", ("github-org:other",))


@pytest.fixture
def gateway_cert(pki_home: HomePaths) -> HomePaths:
    """The session PKI with a certificate ``gateway`` of role gateway (and ``operator`` of role operators)."""
    pki.issue(pki_home, "gateway", "gateway")
    pki.issue(pki_home, "operator", "operators")
    return pki_home


def as_user(api: RunningApi, user: str, groups: tuple[str, ...] = (), identity: str = "gateway") -> ApiClient:
    """A client with ``identity``'s certificate acting for ``user`` in ``groups``."""
    return ApiClient(api.secure_url, ca=api.pki.ca_cert, cert=api.pki.cert(identity), key=api.pki.key(identity),
                     headers=impersonation.headers(user, groups))


def binding(name: str, role: str, *subjects: tuple[str, str], namespace: str = "") -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": "ClusterRoleBinding" if not namespace else "RoleBinding",
                           "metadata": {"name": name},
                           "spec": {"role": role, "subjects": [{"kind": k, "name": n} for k, n in subjects]}}
    if namespace:
        doc["metadata"]["namespace"] = namespace
    return doc


async def allowed(call: Callable[[], Awaitable[Any]]) -> bool:
    try:
        await call()
    except Forbidden:
        return False
    return True


async def denied(call: Callable[[], Awaitable[Any]]) -> bool:
    return not await allowed(call)


async def test_gateway_as_itself_keeps_only_its_own_records(api: RunningApi, gateway_cert: HomePaths) -> None:
    async with api.client("gateway") as gateway:
        for call in (lambda: gateway.get("node", "n1"), lambda: gateway.list("secrets", "default"),
                     lambda: gateway.list("rolebindings", "default")):
            with pytest.raises(Forbidden, match="'gateway' \\(role persys:gateway\\) may not"):
                await call()
        assert not (await gateway.review_access("get", "nodes", ""))["status"]["allowed"]
        # its sessions and webhook secrets, and the workloads a push redeploys
        assert (await gateway.review_access("create", "secrets", "persys-gateway"))["status"]["allowed"]
        await gateway.list("secrets", "persys-gateway")
        await gateway.list("workloads", None)
    status, body, _ = await raw_request(api, "GET", "/apis/persys.dev/v1/namespaces/default/workloads",
                                        identity="gateway", headers={"Impersonate-Group": "github-org:acme"})
    assert status == 403 and "Impersonate-User" in json.loads(body)["message"]
    status, _, _ = await raw_request(api, "GET", "/version", identity="gateway")  # public routes stay public
    assert status == 200


async def test_impersonation_from_any_other_role_is_refused(api: RunningApi, gateway_cert: HomePaths) -> None:
    for identity in ("admin", "controller", "node-n1", "operator"):
        async with as_user(api, "github:octocat", identity=identity) as client:
            with pytest.raises(Forbidden, match="Impersonate-User header is accepted from the persys:gateway role"):
                await client.list("workloads")
    status, body, _ = await raw_request(api, "GET", "/apis/persys.dev/v1/namespaces/default/workloads",
                                        headers={"Impersonate-Group": "github-org:acme"})
    assert status == 403 and "Impersonate-Group" in json.loads(body)["message"]
    async with api.client() as admin:  # the certificate roles are unchanged without the headers
        assert (await admin.list("workloads"))[0] == []


async def test_malformed_impersonation_is_a_400(api: RunningApi, gateway_cert: HomePaths) -> None:
    path = "/apis/persys.dev/v1/namespaces/default/workloads"
    status, body, _ = await raw_request(api, "GET", path, identity="gateway",
                                        headers={"Impersonate-User": "github:x", "Impersonate-Extra-Scopes": "a"})
    assert status == 400 and "Impersonate-Extra-Scopes" in json.loads(body)["message"]
    async with ApiClient(api.secure_url, ca=api.pki.ca_cert, cert=api.pki.cert("gateway"), key=api.pki.key("gateway"),
                         headers=[("Impersonate-User", "a"), ("Impersonate-User", "b")]) as client:
        with pytest.raises(BadRequest, match="once"):
            await client.list("workloads")


async def test_bindings_allow_and_deny_per_namespace_role_and_subject(api: RunningApi,
                                                                     gateway_cert: HomePaths) -> None:
    async with api.client() as admin, as_user(api, *OCTOCAT) as octocat, as_user(api, *MONA) as mona:
        await admin.apply_raw(binding("ops-edit", "edit", ("github-team", "acme/ops"), namespace="a"))
        await admin.apply_raw(binding("acme-view", "view", ("github-org", "acme"), namespace="b"))
        await admin.apply_raw(manifest("web", namespace="b"))
        await admin.apply_raw({"kind": "Secret", "metadata": {"name": "token", "namespace": "b"}, "data": {"t": "x"}})
        await eventually(lambda: allowed(lambda: octocat.list("workloads", "a")))

        created, outcome = await octocat.apply_raw(manifest("api", namespace="a"))
        assert outcome == "created" and created.metadata.namespace == "a"
        await octocat.patch("workload", "api", {"spec": {"image": "persys/busybox:other"}}, namespace="a")
        await octocat.apply_raw({"kind": "Secret", "metadata": {"name": "s", "namespace": "a"}, "data": {"k": "v"}})
        assert (await octocat.get("workload", "web", "b")).metadata.name == "web"
        assert [w.metadata.name for w in (await octocat.list("workloads", "b"))[0]] == ["web"]

        with pytest.raises(Forbidden) as caught:
            await octocat.delete("workload", "web", namespace="b")
        message = caught.value.message
        assert "'github:octocat'" in message and "delete workloads in namespace 'b'" in message
        assert "no binding allows it" in message and "RoleBinding b/acme-view gives only role view" in message
        with pytest.raises(Forbidden, match="may not get secrets in namespace 'b'"):
            await octocat.get("secret", "token", "b")
        with pytest.raises(Forbidden, match="may not update rolebindings in namespace 'a'"):
            await octocat.apply_raw(binding("mine", "admin", ("github-user", "octocat"), namespace="a"))
        with pytest.raises(Forbidden, match="may not get workloads in namespace 'c'"):
            await octocat.get("workload", "web", "c")
        with pytest.raises(Forbidden, match=r"may not list nodes \(cluster-scoped\)"):
            await octocat.list("nodes", None)
        with pytest.raises(Forbidden, match="user 'github:mona'"):
            await mona.list("workloads", "a")
        assert await octocat.delete("workload", "api", namespace="a") is not None


async def test_a_binding_created_then_deleted_takes_effect(api: RunningApi, gateway_cert: HomePaths) -> None:
    async with api.client() as admin, as_user(api, "github:octocat") as octocat:
        await admin.apply_raw(manifest("web", namespace="a"))
        with pytest.raises(Forbidden):
            await octocat.get("workload", "web", "a")
        await admin.apply_raw(binding("octocat", "view", ("github-user", "octocat"), namespace="a"))
        await eventually(lambda: allowed(lambda: octocat.get("workload", "web", "a")))
        await admin.delete("rolebinding", "octocat", namespace="a")
        await eventually(lambda: denied(lambda: octocat.get("workload", "web", "a")))


async def test_lists_and_watches_across_namespaces_need_a_cluster_binding(api: RunningApi,
                                                                         gateway_cert: HomePaths) -> None:
    async with api.client() as admin, as_user(api, *OCTOCAT) as octocat:
        for namespace in ("a", "b"):
            await admin.apply_raw(manifest("web", namespace=namespace))
        await admin.apply_raw(binding("acme-a", "admin", ("github-org", "acme"), namespace="a"))
        await eventually(lambda: allowed(lambda: octocat.list("workloads", "a")))
        assert [w.metadata.namespace for w in (await octocat.list("workloads", "a"))[0]] == ["a"]
        with pytest.raises(Forbidden, match="may not list workloads in all namespaces: no ClusterRoleBinding"):
            await octocat.list("workloads", None)
        with pytest.raises(Forbidden, match="may not watch workloads in all namespaces"):
            async for _ in octocat.watch("workloads", None):
                break
        with pytest.raises(Forbidden, match="in namespace 'b'"):
            await octocat.list("workloads", "b")

        await admin.apply_raw(binding("acme-view", "view", ("github-org", "acme")))
        await eventually(lambda: allowed(lambda: octocat.list("workloads", None)))
        items, _ = await octocat.list("workloads", None)
        assert sorted(w.metadata.namespace for w in items) == ["a", "b"]
        assert [n for n in (await octocat.list("nodes", None))[0]] == []
        with pytest.raises(Forbidden, match="ClusterRoleBinding acme-view gives only role view"):
            await octocat.list("secrets", None)


async def test_can_i_is_the_servers_answer(api: RunningApi, gateway_cert: HomePaths) -> None:
    async with api.client() as admin, as_user(api, *OCTOCAT) as octocat, api.client("node-n1") as agent:
        await admin.apply_raw(binding("ops-edit", "edit", ("github-team", "acme/ops"), namespace="a"))
        await eventually(lambda: allowed(lambda: octocat.list("workloads", "a")))

        mine = await octocat.review_access("delete", "workloads", "a")
        assert mine["status"] == {"allowed": True, "decidedBy": "RoleBinding a/ops-edit",
                                  "reason": "RoleBinding a/ops-edit gives role edit"}
        assert mine["spec"]["user"] == "github:octocat"
        denied = await octocat.review_access("create", "rolebindings", "a")
        assert denied["status"]["allowed"] is False and "gives only role edit" in denied["status"]["reason"]
        with pytest.raises(Forbidden, match="only admins"):
            await octocat.review_access("get", "workloads", "a", user="github:mona")

        theirs = await admin.review_access("patch", "wl", "a", user="github:octocat", groups=["github-team:acme/ops"])
        assert theirs["status"]["decidedBy"] == "RoleBinding a/ops-edit"
        nobody = await admin.review_access("get", "workloads", "a", user="github:mona")
        assert nobody["status"]["allowed"] is False and "no binding allows it" in nobody["status"]["reason"]
        itself = await admin.review_access("delete", "nodes")
        assert itself["status"]["allowed"] and itself["status"]["decidedBy"] == "certificate role persys:admins"
        node = await agent.review_access("delete", "workloads", "a")
        assert node["status"]["allowed"] is False
        with pytest.raises(Forbidden, match="only admins"):
            await agent.review_access("get", "workloads", "a", user="github:octocat")


async def test_bad_access_reviews_name_the_field(api: RunningApi) -> None:
    path = "/apis/persys.dev/v1/accessreviews"
    for body, field in (({"spec": {"verb": "steal", "kind": "workloads"}}, "spec.verb"),
                        ({"spec": {"verb": "get", "kind": "gizmos"}}, "spec.kind"),
                        ({"spec": {"verb": "get", "kind": "workloads", "namespace": "A/B"}}, "spec.namespace"),
                        ({"spec": {"verb": "get", "kind": "workloads", "groups": ["g"]}}, "spec.user"),
                        ({"spec": {"verb": "get", "kind": "workloads", "user": 3}}, "spec.user")):
        status, raw, _ = await raw_request(api, "POST", path, body=json.dumps(body).encode())
        assert status == 422, raw
        assert field in [c["field"] for c in json.loads(raw)["details"]["causes"]]
    for raw_body in (b"", b"[1]", b"{bad"):
        status, _, _ = await raw_request(api, "POST", path, body=raw_body)
        assert status == 400


def test_effective_user_never_raises() -> None:
    from aiohttp.test_utils import make_mocked_request

    from persys.api.access import User
    from persys.api.auth import IDENTITY, Identity
    from persys.api.impersonation import ANONYMOUS, USER, effective_user
    from persys.security.pki import GATEWAY

    request = make_mocked_request("GET", "/version")
    assert effective_user(request) == ANONYMOUS
    request[IDENTITY] = Identity("gateway", GATEWAY)  # refused before its impersonation was accepted
    assert effective_user(request).name == "gateway" and not effective_user(request).impersonated
    request[USER] = impersonated = User("github:x", (), impersonated_by="gateway")
    assert effective_user(request) is impersonated
