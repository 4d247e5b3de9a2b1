"""The audit policy: which level each request is recorded at, first matching rule wins.

The file has the shape of Kubernetes' ``audit.k8s.io/v1`` Policy (``rules`` with ``level``,
``users``, ``userGroups``, ``verbs``, ``resources`` of ``{group, resources, resourceNames}``,
``namespaces``, ``nonResourceURLs``), plus ``kinds`` (kind names, any group) because Persys users
think in kinds. A rule with ``resources``, ``kinds`` or ``namespaces`` matches only requests about
objects, one with ``nonResourceURLs`` only the others, one with neither both. A request no rule
matches is not recorded (level None), as in Kubernetes.

Whatever the policy says, a sensitive kind (Secrets) is never recorded above Metadata: its data
must not reach the trail. A bad file is refused when the server starts, each problem naming its
field (``rules[2].level: must be one of …``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from persys.errors import Cause, Invalid


class Level(enum.StrEnum):
    """How much of a request an event records, in increasing order."""

    NONE = "None"
    METADATA = "Metadata"
    REQUEST = "Request"
    REQUEST_RESPONSE = "RequestResponse"

    @property
    def rank(self) -> int:
        return list(Level).index(self)

    def at_most(self, cap: Level) -> Level:
        return self if self.rank <= cap.rank else cap


LEVELS = ", ".join(Level)
READ_VERBS = frozenset({"get", "list", "watch"})


@dataclass(frozen=True)
class Attributes:
    """What a rule is matched against: who asked for what (resource fields are "" for other requests)."""

    user: str
    groups: tuple[str, ...]
    verb: str
    path: str = ""
    kind: str = ""
    group: str = ""
    resource: str = ""  # the plural: "workloads"
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    sensitive: bool = False  # a kind whose payload must stay out of the trail

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)

    @property
    def is_read(self) -> bool:
        return self.verb in READ_VERBS


@dataclass(frozen=True)
class GroupResources:
    """One ``resources`` entry: a group ("" or absent: any), plurals (``workloads/status``, ``*``), names."""

    group: str | None
    resources: tuple[str, ...]
    names: tuple[str, ...]

    def matches(self, attrs: Attributes) -> bool:
        if self.group is not None and self.group not in ("*", attrs.group):
            return False
        if self.resources and not any(_resource_matches(r, attrs) for r in self.resources):
            return False
        return not self.names or attrs.name in self.names


def _resource_matches(pattern: str, attrs: Attributes) -> bool:
    """``workloads`` (not its subresources), ``workloads/status``, ``workloads/*``, ``*`` and ``*/status``."""
    wanted, _, sub = pattern.partition("/")
    if wanted not in ("*", attrs.resource):
        return False
    if not sub:
        return wanted == "*" or not attrs.subresource
    return sub in ("*", attrs.subresource)


@dataclass(frozen=True)
class Rule:
    """One rule: ``level`` for the requests every given field matches (an absent field matches all)."""

    level: Level
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    def matches(self, attrs: Attributes) -> bool:
        if self.users and attrs.user not in self.users:
            return False
        if self.user_groups and not set(self.user_groups) & set(attrs.groups):
            return False
        if self.verbs and not {"*", attrs.verb} & set(self.verbs):
            return False
        if attrs.is_resource:
            return self._matches_object(attrs)
        if self.resources or self.kinds or self.namespaces:
            return False
        return not self.non_resource_urls or any(_url_matches(u, attrs.path) for u in self.non_resource_urls)

    def _matches_object(self, attrs: Attributes) -> bool:
        if self.non_resource_urls:
            return False
        if self.namespaces and attrs.namespace not in self.namespaces:
            return False
        if self.kinds and not {"*", attrs.kind.lower()} & {k.lower() for k in self.kinds}:
            return False
        return not self.resources or any(entry.matches(attrs) for entry in self.resources)


def _url_matches(pattern: str, path: str) -> bool:
    return path.startswith(pattern[:-1]) if pattern.endswith("*") else path == pattern


@dataclass(frozen=True)
class Policy:
    """Ordered rules; ``source`` names where they came from (a file, or the default)."""

    rules: tuple[Rule, ...]
    source: str = "default policy"

    def level(self, attrs: Attributes) -> Level:
        """The first matching rule's level (None when no rule matches), never above Metadata for Secrets."""
        level = next((rule.level for rule in self.rules if rule.matches(attrs)), Level.NONE)
        return level.at_most(Level.METADATA) if attrs.sensitive else level


DEFAULT_POLICY_YAML = """\
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
# who read or changed a Secret, never its data
- level: Metadata
  kinds: [Secret]
# reads are not recorded (change this rule to Metadata to record them)
- level: None
  verbs: [get, list, watch]
# every change, with the object that was sent
- level: Request
"""

_RULE_FIELDS = {"level", "users", "userGroups", "verbs", "kinds", "resources", "namespaces", "nonResourceURLs"}
_RESOURCE_FIELDS = {"group", "resources", "resourceNames"}
_TOP_FIELDS = {"apiVersion", "kind", "rules", "metadata"}


class _Problems:
    """The causes found while reading a policy, each naming its field."""

    def __init__(self) -> None:
        self.causes: list[Cause] = []

    def add(self, field: str, message: str) -> None:
        self.causes.append(Cause(field, message))

    def strings(self, data: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
        value = data.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.add(f"{where}.{key}", "must be a list of strings")
            return ()
        return tuple(value)

    def unknown(self, data: dict[str, Any], known: set[str], where: str) -> None:
        for key in sorted(set(data) - known, key=str):
            self.add(f"{where}.{key}" if where else str(key), f"unknown field; known: {', '.join(sorted(known))}")


def parse_policy(data: Any, source: str = "policy") -> Policy:
    """The Policy a YAML document describes; Invalid naming every bad field."""
    problems = _Problems()
    if not isinstance(data, dict):
        raise Invalid(f"audit policy {source} is invalid: it must be a mapping with `rules`",
                      causes=[Cause("", "must be a mapping")])
    problems.unknown(data, _TOP_FIELDS, "")
    if data.get("apiVersion") not in (None, "audit.k8s.io/v1"):
        problems.add("apiVersion", f"must be audit.k8s.io/v1, not {data.get('apiVersion')!r}")
    if data.get("kind") not in (None, "Policy"):
        problems.add("kind", f"must be Policy, not {data.get('kind')!r}")
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list):
        problems.add("rules", "required: a list of rules")
        raw_rules = []
    rules = [rule for i, raw in enumerate(raw_rules) if (rule := _rule(raw, f"rules[{i}]", problems)) is not None]
    if problems.causes:
        detail = "; ".join(f"{c.field}: {c.message}" for c in problems.causes)
        raise Invalid(f"audit policy {source} is invalid: {detail}", causes=problems.causes)
    return Policy(tuple(rules), source)


def _rule(raw: Any, where: str, problems: _Problems) -> Rule | None:
    if not isinstance(raw, dict):
        problems.add(where, "must be a mapping with a level")
        return None
    problems.unknown(raw, _RULE_FIELDS, where)
    level = raw.get("level")
    if level not in tuple(Level):
        problems.add(f"{where}.level", ("required" if level is None else f"{level!r} is not a level") +
                     f"; one of {LEVELS}")
        return None
    resources = raw.get("resources")
    entries: list[GroupResources] = []
    if resources is not None and not isinstance(resources, list):
        problems.add(f"{where}.resources", "must be a list of {group, resources, resourceNames}")
    for i, entry in enumerate(resources if isinstance(resources, list) else []):
        path = f"{where}.resources[{i}]"
        if not isinstance(entry, dict):
            problems.add(path, "must be a mapping with group, resources, resourceNames")
            continue
        problems.unknown(entry, _RESOURCE_FIELDS, path)
        group = entry.get("group")
        if group is not None and not isinstance(group, str):
            problems.add(f"{path}.group", "must be a string")
        entries.append(GroupResources(group or None, problems.strings(entry, "resources", path),
                                      problems.strings(entry, "resourceNames", path)))
    return Rule(Level(level), users=problems.strings(raw, "users", where),
                user_groups=problems.strings(raw, "userGroups", where), verbs=problems.strings(raw, "verbs", where),
                kinds=problems.strings(raw, "kinds", where), resources=tuple(entries),
                namespaces=problems.strings(raw, "namespaces", where),
                non_resource_urls=problems.strings(raw, "nonResourceURLs", where))


def load_policy(path: Path | None) -> Policy:
    """The policy in the YAML file ``path`` (None: the default policy); Invalid naming the file and field."""
    if path is None:
        return default_policy()
    try:
        text = path.read_text()
    except OSError as e:
        raise Invalid(f"audit policy {path}: cannot read it ({e.strerror or e})",
                      causes=[Cause("--audit-policy", f"cannot read {path}")]) from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise Invalid(f"audit policy {path} is not YAML: {e}", causes=[Cause("--audit-policy", "not YAML")]) from e
    return parse_policy(data, str(path))


def default_policy() -> Policy:
    return parse_policy(yaml.safe_load(DEFAULT_POLICY_YAML), "default policy")

