"""The access kinds: ``RoleBinding`` (namespaced) and ``ClusterRoleBinding`` (cluster-scoped).

A binding gives its ``subjects`` one ``role`` (admin, edit or view). A RoleBinding applies in its
own namespace only; a ClusterRoleBinding applies in every namespace and to the cluster-scoped
kinds (Nodes, ResourceDefinitions, ClusterRoleBindings). Two kinds rather than a scope field, as
Kubernetes does: where a binding applies is then where it is stored, and who may write it is
decided like any other object (a namespace's admin may write the RoleBindings of that namespace,
only a cluster-wide admin ClusterRoleBindings).

Subjects name people as the gateway knows them (``github-user``, ``github-org``, ``github-team``
``org/team``) or a certificate identity (``identity``). What the roles allow, and how a subject
matches a user, is decided in ``persys.api.access``.
"""

from __future__ import annotations

from typing import Any

from persys.errors import Cause
from persys.resources.columns import age
from persys.resources.model import Resource
from persys.resources.registry import Kind
from persys.resources.schema import Schema

ROLES = ("admin", "edit", "view")
GITHUB_USER, GITHUB_ORG, GITHUB_TEAM, IDENTITY = "github-user", "github-org", "github-team", "identity"
SUBJECT_KINDS = (GITHUB_USER, GITHUB_ORG, GITHUB_TEAM, IDENTITY)
MAX_NAME = 256

BINDING_SPEC: Schema = {"type": "object", "properties": {
    "role": {"type": "string", "enum": list(ROLES)},
    "subjects": {"type": "array", "items": {"type": "object", "properties": {
        "kind": {"type": "string", "enum": list(SUBJECT_KINDS)},
        "name": {"type": "string"},
    }, "required": ["kind", "name"]}},
}, "required": ["role", "subjects"]}


def _name_problem(kind: str, name: str) -> str | None:
    """Why ``name`` cannot name a subject of ``kind`` (None when it can)."""
    if len(name) > MAX_NAME:
        return f"must be at most {MAX_NAME} characters"
    if name != name.strip() or any(not c.isprintable() for c in name):
        return "must not contain spaces at either end or control characters"
    if kind == GITHUB_TEAM:
        org, _, team = name.partition("/")
        if not org or not team or "/" in team:
            return "a github-team is named org/team"
    elif kind in (GITHUB_USER, GITHUB_ORG) and ("/" in name or ":" in name):
        return f"a {kind} is a bare GitHub login, without '/' or ':'"
    return None


def _subject_checks(spec: dict[str, Any]) -> list[Cause]:
    subjects = spec.get("subjects") or []
    if not subjects:
        return [Cause("spec.subjects", "at least one subject is required")]
    causes = []
    for i, subject in enumerate(subjects):
        if msg := _name_problem(subject["kind"], subject["name"]):
            causes.append(Cause(f"spec.subjects[{i}].name", msg))
    return causes


def subjects_text(obj: Resource) -> str:
    """``kind:name`` of each subject, comma-separated (the SUBJECTS column)."""
    return ",".join(f"{s.get('kind')}:{s.get('name')}" for s in obj.spec.get("subjects") or [])


_COLUMNS = (
    ("NAME", lambda o: o.metadata.name),
    ("ROLE", lambda o: str(o.spec.get("role", ""))),
    ("SUBJECTS", subjects_text),
    ("AGE", age),
)

ROLE_BINDING = Kind(
    kind="RoleBinding", plural="rolebindings", namespaced=True, short_names=("rb",),
    description="Gives people (GitHub users, orgs, teams) or certificate identities a role "
                "(admin, edit, view) in this binding's namespace.",
    spec_schema=BINDING_SPEC, status_subresource=False, cross_checks=(_subject_checks,), columns=_COLUMNS,
)

CLUSTER_ROLE_BINDING = Kind(
    kind="ClusterRoleBinding", plural="clusterrolebindings", namespaced=False, short_names=("crb",),
    description="Gives people (GitHub users, orgs, teams) or certificate identities a role "
                "(admin, edit, view) in every namespace and on the cluster-scoped kinds.",
    spec_schema=BINDING_SPEC, status_subresource=False, cross_checks=(_subject_checks,), columns=_COLUMNS,
)

BINDING_KINDS = frozenset({ROLE_BINDING.kind, CLUSTER_ROLE_BINDING.kind})
