"""Access by namespace: may this user do this verb on this kind here? A pure function of the bindings.

``decide(bindings, user, verb, kind, namespace)`` answers with the binding that allowed the request,
or with why none did; nothing here does I/O, so each row of the table is tested directly
(``tests/api/test_access_decisions.py``). The API asks it for impersonated users only (requests of
the gateway); certificate roles are decided by ``persys.api.auth`` as before.

Where a binding applies:
- a RoleBinding in its own namespace, for namespaced kinds only;
- a ClusterRoleBinding everywhere: every namespace, all namespaces at once (a list or watch
  without a namespace), and the cluster-scoped kinds, which nothing else can allow.

What a role allows there:

| role  | allows |
|-------|--------|
| admin | every verb on every kind |
| edit  | every verb on every kind but RoleBindings and ClusterRoleBindings; only reads of BootstrapTokens and CSRs |
| view  | get, list, watch on every kind but Secrets (sensitive kinds) and bindings |

Who a subject is: ``github-user NAME`` the user ``github:NAME``; ``github-org NAME`` the group
``github-org:NAME``; ``github-team ORG/TEAM`` the group ``github-team:ORG/TEAM`` (GitHub names
compare without case, as GitHub's do); ``identity NAME`` the user called exactly ``NAME``.

A binding being deleted (``deletionTimestamp`` set) no longer allows anything. When several
bindings allow a request, the one reported is the first of: the namespace's RoleBindings, then the
ClusterRoleBindings, each by name, so the answer never depends on cache order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from persys.resources import Kind, Resource
from persys.resources.rbac import (
    BINDING_KINDS,
    CLUSTER_ROLE_BINDING,
    GITHUB_ORG,
    GITHUB_TEAM,
    GITHUB_USER,
    IDENTITY,
    ROLE_BINDING,
)

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
JOIN_KINDS = frozenset({"BootstrapToken", "CertificateSigningRequest"})
READ_VERBS = frozenset({"get", "list", "watch"})
GITHUB_USER_PREFIX = "github:"
SUBJECT_GROUP_PREFIX = {GITHUB_ORG: "github-org:", GITHUB_TEAM: "github-team:"}


@dataclass(frozen=True)
class User:
    """Who a request acts as: a name and the groups it belongs to.

    ``impersonated_by`` is the identity (certificate CN) of the gateway that acts for the user; it is
    "" for a caller that is its own certificate, whose ``groups`` are then its role (``persys:admins``).
    """

    name: str
    groups: tuple[str, ...] = ()
    impersonated_by: str = ""

    @property
    def impersonated(self) -> bool:
        return bool(self.impersonated_by)

    def describe(self) -> str:
        """``user "github:octocat" (groups github-org:acme)`` for messages."""
        groups = f" (groups {', '.join(self.groups)})" if self.groups else ""
        return f"user {self.name!r}{groups}"


@dataclass(frozen=True)
class Decision:
    """The answer: ``allowed``, the binding that decided (``RoleBinding a/devs``; '' when denied), and why."""

    allowed: bool
    binding: str
    reason: str


def binding_name(binding: Resource) -> str:
    """``RoleBinding NAMESPACE/NAME`` or ``ClusterRoleBinding NAME``."""
    meta = binding.metadata
    return f"{binding.kind} {meta.namespace}/{meta.name}" if meta.namespace else f"{binding.kind} {meta.name}"


def role_allows(role: str, verb: str, kind: Kind) -> bool:
    """Whether ``role`` allows ``verb`` on objects of ``kind`` (where the binding applies)."""
    if role == "admin":
        return True
    if kind.kind in BINDING_KINDS:
        return False
    if kind.kind in JOIN_KINDS and verb not in READ_VERBS:
        return False  # a token or a CSR is a certificate of the cluster CA in the making: an admin's call
    if role == "edit":
        return True
    return role == "view" and verb in READ_VERBS and not kind.sensitive


def subject_matches(subject: dict[str, object], user: User) -> bool:
    """Whether one subject of a binding is ``user`` or one of its groups."""
    kind, name = str(subject.get("kind") or ""), str(subject.get("name") or "")
    if not name:
        return False
    if kind == IDENTITY:
        return user.name == name
    if kind == GITHUB_USER:
        return user.name.casefold() == (GITHUB_USER_PREFIX + name).casefold()
    prefix = SUBJECT_GROUP_PREFIX.get(kind)
    return prefix is not None and (prefix + name).casefold() in {g.casefold() for g in user.groups}


def applies(binding: Resource, kind: Kind, namespace: str) -> bool:
    """Whether ``binding`` speaks for requests on ``kind`` in ``namespace`` ('' for cluster-scoped
    kinds and for lists and watches across all namespaces)."""
    if binding.metadata.deletionTimestamp:
        return False
    if binding.kind == CLUSTER_ROLE_BINDING.kind:
        return True
    return binding.kind == ROLE_BINDING.kind and kind.namespaced and bool(namespace) \
        and binding.metadata.namespace == namespace


def _order(binding: Resource) -> tuple[int, str, str]:
    return (0 if binding.kind == ROLE_BINDING.kind else 1, binding.metadata.namespace, binding.metadata.name)


def where(kind: Kind, namespace: str) -> str:
    """Where a request acts, for messages: ``in namespace "a"``, ``in all namespaces``, ``(cluster-scoped)``."""
    if not kind.namespaced:
        return "(cluster-scoped)"
    return f"in namespace {namespace!r}" if namespace else "in all namespaces"


def decide(bindings: Iterable[Resource], user: User, verb: str, kind: Kind, namespace: str) -> Decision:
    """May ``user`` ``verb`` objects of ``kind`` in ``namespace``? The first binding that allows it
    decides; without one, the reason names the user, verb, kind and namespace, and the bindings that
    apply to the user there but give a role too weak for the request."""
    weaker: list[str] = []
    for binding in sorted(bindings, key=_order):
        if not applies(binding, kind, namespace):
            continue
        if not any(subject_matches(s, user) for s in binding.spec.get("subjects") or [] if isinstance(s, dict)):
            continue
        role = str(binding.spec.get("role") or "")
        if role_allows(role, verb, kind):
            return Decision(True, binding_name(binding), f"{binding_name(binding)} gives role {role}")
        weaker.append(f"{binding_name(binding)} gives only role {role}")
    request = f"{user.describe()} may not {verb} {kind.plural} {where(kind, namespace)}"
    if kind.namespaced and namespace:
        none = "no binding allows it"
    else:
        none = "no ClusterRoleBinding allows it (only a cluster-wide binding can)"
    return Decision(False, "", f"{request}: {none}" + (f" ({'; '.join(weaker)})" if weaker else ""))
