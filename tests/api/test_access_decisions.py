"""The access decision table (``persys.api.access.decide``), row by row: roles × verbs × kinds,
namespace vs cluster bindings, and every kind of subject."""

from __future__ import annotations

from typing import Any

import pytest

from persys.api.access import VERBS, User, decide
from persys.resources import REGISTRY, Resource

OCTOCAT = User("github:octocat", ("github-org:acme", "github-team:acme/ops"), impersonated_by="gw")
MONA = User("github:mona", ("github-org:other",), impersonated_by="gw")
CI = User("ci-bot", (), impersonated_by="gw")

WORKLOAD, SECRET, EVENT = REGISTRY.get("Workload"), REGISTRY.get("Secret"), REGISTRY.get("Event")
NODE, RD = REGISTRY.get("Node"), REGISTRY.get("ResourceDefinition")
RB, CRB = REGISTRY.get("RoleBinding"), REGISTRY.get("ClusterRoleBinding")


def rb(name: str, namespace: str, role: str, *subjects: tuple[str, str], deleting: bool = False) -> Resource:
    doc: dict[str, Any] = {"kind": "RoleBinding", "metadata": {"name": name, "namespace": namespace},
                           "spec": {"role": role, "subjects": [{"kind": k, "name": n} for k, n in subjects]}}
    obj = REGISTRY.parse(doc)
    if deleting:
        obj.metadata.deletionTimestamp = "2026-01-01T00:00:00Z"
    return obj


def crb(name: str, role: str, *subjects: tuple[str, str]) -> Resource:
    return REGISTRY.parse({"kind": "ClusterRoleBinding", "metadata": {"name": name},
                           "spec": {"role": role, "subjects": [{"kind": k, "name": n} for k, n in subjects]}})


USER = ("github-user", "octocat")
ORG = ("github-org", "acme")
TEAM = ("github-team", "acme/ops")

A_ADMIN, A_EDIT = rb("a-admin", "a", "admin", USER), rb("a-edit", "a", "edit", USER)
A_VIEW = rb("a-view", "a", "view", USER)
C_ADMIN, C_EDIT, C_VIEW = crb("c-admin", "admin", USER), crb("c-edit", "edit", USER), crb("c-view", "view", USER)

ROWS: list[tuple[str, list[Resource], User, str, Any, str, bool, str]] = [
    # (name, bindings, user, verb, kind, namespace, allowed, binding that decided | words of the reason)
    ("no bindings at all", [], OCTOCAT, "get", WORKLOAD, "a", False, "no binding allows it"),
    # view in a namespace
    ("view gets workloads", [A_VIEW], OCTOCAT, "get", WORKLOAD, "a", True, "RoleBinding a/a-view"),
    ("view lists workloads", [A_VIEW], OCTOCAT, "list", WORKLOAD, "a", True, "RoleBinding a/a-view"),
    ("view watches events", [A_VIEW], OCTOCAT, "watch", EVENT, "a", True, "RoleBinding a/a-view"),
    ("view may not create", [A_VIEW], OCTOCAT, "create", WORKLOAD, "a", False, "gives only role view"),
    ("view may not update", [A_VIEW], OCTOCAT, "update", WORKLOAD, "a", False, "no binding allows it"),
    ("view may not patch", [A_VIEW], OCTOCAT, "patch", WORKLOAD, "a", False, "no binding allows it"),
    ("view may not delete", [A_VIEW], OCTOCAT, "delete", WORKLOAD, "a", False, "no binding allows it"),
    ("view may not get secrets", [A_VIEW], OCTOCAT, "get", SECRET, "a", False, "secrets"),
    ("view may not list secrets", [A_VIEW], OCTOCAT, "list", SECRET, "a", False, "secrets"),
    ("view may not read bindings", [A_VIEW], OCTOCAT, "get", RB, "a", False, "rolebindings"),
    # edit in a namespace
    ("edit creates workloads", [A_EDIT], OCTOCAT, "create", WORKLOAD, "a", True, "RoleBinding a/a-edit"),
    ("edit deletes workloads", [A_EDIT], OCTOCAT, "delete", WORKLOAD, "a", True, "RoleBinding a/a-edit"),
    ("edit reads secrets", [A_EDIT], OCTOCAT, "get", SECRET, "a", True, "RoleBinding a/a-edit"),
    ("edit writes secrets", [A_EDIT], OCTOCAT, "update", SECRET, "a", True, "RoleBinding a/a-edit"),
    ("edit may not create bindings", [A_EDIT], OCTOCAT, "create", RB, "a", False, "gives only role edit"),
    ("edit may not list bindings", [A_EDIT], OCTOCAT, "list", RB, "a", False, "no binding allows it"),
    # admin in a namespace
    ("admin creates bindings", [A_ADMIN], OCTOCAT, "create", RB, "a", True, "RoleBinding a/a-admin"),
    ("admin deletes secrets", [A_ADMIN], OCTOCAT, "delete", SECRET, "a", True, "RoleBinding a/a-admin"),
    # a namespace binding stays in its namespace
    ("binding in a, request in b", [A_ADMIN], OCTOCAT, "get", WORKLOAD, "b", False, 'in namespace \'b\''),
    ("namespace admin, all-namespaces list", [A_ADMIN], OCTOCAT, "list", WORKLOAD, "", False,
     "in all namespaces: no ClusterRoleBinding"),
    ("namespace admin, all-namespaces watch", [A_ADMIN], OCTOCAT, "watch", WORKLOAD, "", False, "ClusterRoleBinding"),
    ("namespace admin, cluster-scoped nodes", [A_ADMIN], OCTOCAT, "get", NODE, "", False, "(cluster-scoped)"),
    ("namespace admin, cluster bindings", [A_ADMIN], OCTOCAT, "create", CRB, "", False, "ClusterRoleBinding"),
    ("namespace admin, resource definitions", [A_ADMIN], OCTOCAT, "create", RD, "", False, "cluster-scoped"),
    # cluster-wide bindings
    ("cluster view, any namespace", [C_VIEW], OCTOCAT, "get", WORKLOAD, "zz", True, "ClusterRoleBinding c-view"),
    ("cluster view, all namespaces", [C_VIEW], OCTOCAT, "list", WORKLOAD, "", True, "ClusterRoleBinding c-view"),
    ("cluster view, nodes", [C_VIEW], OCTOCAT, "list", NODE, "", True, "ClusterRoleBinding c-view"),
    ("cluster view, no secrets anywhere", [C_VIEW], OCTOCAT, "list", SECRET, "", False, "gives only role view"),
    ("cluster view, no node writes", [C_VIEW], OCTOCAT, "update", NODE, "", False, "no ClusterRoleBinding"),
    ("cluster edit, node writes", [C_EDIT], OCTOCAT, "update", NODE, "", True, "ClusterRoleBinding c-edit"),
    ("cluster edit, no role bindings", [C_EDIT], OCTOCAT, "create", RB, "a", False, "gives only role edit"),
    ("cluster edit, no cluster bindings", [C_EDIT], OCTOCAT, "delete", CRB, "", False, "gives only role edit"),
    ("cluster admin, cluster bindings", [C_ADMIN], OCTOCAT, "create", CRB, "", True, "ClusterRoleBinding c-admin"),
    ("cluster admin, secrets anywhere", [C_ADMIN], OCTOCAT, "list", SECRET, "", True, "ClusterRoleBinding c-admin"),
    # which binding is reported: the namespace's first, then cluster ones, each by name
    ("namespace binding reported first", [C_ADMIN, A_VIEW], OCTOCAT, "get", WORKLOAD, "a", True,
     "RoleBinding a/a-view"),
    ("weaker namespace binding, stronger cluster one", [A_VIEW, C_EDIT], OCTOCAT, "delete", WORKLOAD, "a", True,
     "ClusterRoleBinding c-edit"),
    ("by name among equals", [rb("zz", "a", "view", USER), rb("aa", "a", "view", ORG)], OCTOCAT, "get",
     WORKLOAD, "a", True, "RoleBinding a/aa"),
    # subjects
    ("github-user matches github:login",
     [rb("u", "a", "view", USER)], OCTOCAT, "get", WORKLOAD, "a", True, "RoleBinding a/u"),
    ("github-user ignores case", [rb("u", "a", "view", ("github-user", "OctoCat"))], OCTOCAT, "get", WORKLOAD,
     "a", True, "RoleBinding a/u"),
    ("github-user is someone else", [rb("u", "a", "view", USER)], MONA, "get", WORKLOAD, "a", False,
     "user 'github:mona'"),
    ("github-org matches the group",
     [rb("o", "a", "edit", ORG)], OCTOCAT, "create", WORKLOAD, "a", True, "RoleBinding a/o"),
    ("github-org of another org", [rb("o", "a", "edit", ORG)], MONA, "create", WORKLOAD, "a", False,
     "no binding allows it"),
    ("github-team matches the group",
     [rb("t", "a", "edit", TEAM)], OCTOCAT, "patch", WORKLOAD, "a", True, "RoleBinding a/t"),
    ("github-team of the same org, another team", [rb("t", "a", "edit", ("github-team", "acme/dev"))], OCTOCAT,
     "patch", WORKLOAD, "a", False, "no binding allows it"),
    ("github-org is not a user of that name", [rb("o", "a", "view", ("github-org", "octocat"))], OCTOCAT, "get",
     WORKLOAD, "a", False, "no binding allows it"),
    ("identity matches the exact name", [rb("i", "a", "edit", ("identity", "ci-bot"))], CI, "update", WORKLOAD,
     "a", True, "RoleBinding a/i"),
    ("identity is not a github login", [rb("i", "a", "edit", ("identity", "octocat"))], OCTOCAT, "update",
     WORKLOAD, "a", False, "no binding allows it"),
    ("github-user is not an identity", [rb("u", "a", "edit", ("github-user", "ci-bot"))], CI, "update",
     WORKLOAD, "a", False, "no binding allows it"),
    ("one of several subjects", [rb("m", "a", "view", ("github-user", "mona"), TEAM)], OCTOCAT, "get", WORKLOAD,
     "a", True, "RoleBinding a/m"),
    # a binding being deleted allows nothing
    ("binding being deleted", [rb("d", "a", "admin", USER, deleting=True)], OCTOCAT, "get", WORKLOAD, "a", False,
     "no binding allows it"),
]


@pytest.mark.parametrize(("bindings", "user", "verb", "kind", "namespace", "allowed", "expect"),
                         [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_decision(bindings: list[Resource], user: User, verb: str, kind: Any, namespace: str, allowed: bool,
                  expect: str) -> None:
    decision = decide(bindings, user, verb, kind, namespace)
    assert decision.allowed is allowed, decision.reason
    if allowed:
        assert decision.binding == expect
        assert expect in decision.reason
    else:
        assert decision.binding == ""
        assert expect in decision.reason


@pytest.mark.parametrize("verb", VERBS)
def test_a_denial_names_user_verb_kind_and_namespace(verb: str) -> None:
    reason = decide([A_VIEW], MONA, verb, WORKLOAD, "a").reason
    assert reason.startswith(f"user 'github:mona' (groups github-org:other) may not {verb} workloads in namespace 'a'")
    assert "no binding allows it" in reason


@pytest.mark.parametrize(("role", "verbs"), [("admin", set(VERBS)), ("edit", set(VERBS)),
                                             ("view", {"get", "list", "watch"})])
def test_each_role_allows_exactly_its_verbs_on_workloads(role: str, verbs: set[str]) -> None:
    binding = rb("r", "a", role, USER)
    assert {v for v in VERBS if decide([binding], OCTOCAT, v, WORKLOAD, "a").allowed} == verbs


def test_binding_names_are_validated_field_by_field() -> None:
    from persys.errors import Invalid

    with pytest.raises(Invalid) as caught:
        REGISTRY.parse({"kind": "RoleBinding", "metadata": {"name": "x"},
                        "spec": {"role": "edit", "subjects": [{"kind": "github-team", "name": "acme"},
                                                              {"kind": "github-user", "name": "a/b"}]}})
    assert [c.field for c in caught.value.causes] == ["spec.subjects[0].name", "spec.subjects[1].name"]
    with pytest.raises(Invalid) as caught:
        REGISTRY.parse({"kind": "RoleBinding", "metadata": {"name": "x"},
                        "spec": {"role": "owner", "subjects": [{"kind": "gitlab-user", "name": "a"}]}})
    assert [c.field for c in caught.value.causes] == ["spec.role", "spec.subjects[0].kind"]
    with pytest.raises(Invalid) as caught:
        REGISTRY.parse({"kind": "ClusterRoleBinding", "metadata": {"name": "x", "namespace": "a"},
                        "spec": {"role": "view", "subjects": []}})
    assert {c.field for c in caught.value.causes} == {"metadata.namespace", "spec.subjects"}


@pytest.mark.parametrize("kind_name", ["BootstrapToken", "CertificateSigningRequest"])
def test_join_kinds_are_written_by_cluster_admins_only(kind_name: str) -> None:
    kind = REGISTRY.get(kind_name)
    for verb in VERBS:
        assert decide([crb("all-admin", "admin", USER)], OCTOCAT, verb, kind, "").allowed
        assert decide([crb("all-edit", "edit", USER)], OCTOCAT, verb, kind, "").allowed == (
            verb in ("get", "list", "watch")), verb
