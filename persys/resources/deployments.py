"""The ``Deployment`` kind: replicas of one Workload template, rolled from one revision to the next.

What is pure about a Deployment lives here, beside its schema, so that the controller
(``persys.deployments``) and the CLI (``persys rollout``) read it the same way:

- ``template_hash``: the revision a template is (10 hex characters of sha256 over its canonical
  JSON); the controller's Workloads are named ``<deployment>-<hash>-<suffix>`` and labelled with it.
- ``scaled``: ``maxSurge`` / ``maxUnavailable`` as a number of replicas, Kubernetes' way (surge
  rounds up, unavailable down; both 0 means one may be unavailable, or nothing could ever move).
- the checks a spec must pass beyond its schema, each naming its field: the selector must match
  the template's labels, a percentage is 0–100%, the template is a valid Workload spec.
- ``progress``: where a rollout stands, in the words of ``kubectl rollout status`` (the CLI and the
  dashboard both say it).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from persys.errors import Cause
from persys.resources.columns import age
from persys.resources.model import Resource
from persys.resources.names import check_dns1123
from persys.resources.registry import ANNOTATIONS, LABELS, Kind
from persys.resources.schema import Schema

TEMPLATE_HASH_LABEL = "persys.dev/template-hash"
RESTARTED_AT = "persys.dev/restartedAt"  # template annotation `persys rollout restart` sets
CHANGE_CAUSE = "persys.dev/change-cause"  # Deployment annotation kept with each revision in the history
HASH_LENGTH, SUFFIX_LENGTH = 10, 5
MAX_NAME = 63 - HASH_LENGTH - SUFFIX_LENGTH - 2  # <name>-<hash>-<suffix> must stay a DNS-1123 label
_PERCENT = re.compile(r"^(\d{1,9})%$")

INT_OR_PERCENT: Schema = {"type": "any"}  # checked by ``_intstr_problem``: the schema language has no union
TIME: Schema = {"type": "string", "nullable": True}
CONDITIONS: Schema = {"type": "array", "items": {"type": "object", "properties": {
    "type": {"type": "string"}, "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
    "reason": {"type": "string"}, "message": {"type": "string"}, "lastTransitionTime": TIME,
    "lastUpdateTime": TIME,
}, "required": ["type", "status"]}}


def template_hash(template: dict[str, Any]) -> str:
    """The revision ``template`` is: the same template always hashes the same, whatever its key order."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:HASH_LENGTH]


def scaled(value: int | str, total: int, *, round_up: bool) -> int:
    """An int-or-percent of ``total`` replicas (``25%`` of 10: 3 rounding up, 2 rounding down)."""
    if isinstance(value, int):
        return value
    match = _PERCENT.match(value)
    if match is None:
        raise ValueError(f"{value!r} is neither an integer nor a percentage")
    exact = int(match.group(1)) * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def surge_and_unavailable(spec: dict[str, Any]) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in replicas for ``spec.replicas``; never both 0."""
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    replicas = int(spec.get("replicas", 1))
    surge = scaled(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = scaled(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    return surge, 1 if surge == 0 and unavailable == 0 else unavailable


def _intstr_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return f"must be an integer or a percentage such as '25%', not {type(value).__name__}"
    if isinstance(value, int):
        return "must not be negative" if value < 0 else None
    match = _PERCENT.match(value)
    if match is None:
        return f"{value!r} is neither an integer nor a percentage such as '25%'"
    return f"{value} is over 100%" if int(match.group(1)) > 100 else None


def check_name(name: str) -> str | None:
    """A Deployment's name must leave room for ``-<hash>-<suffix>`` in its Workloads' names."""
    problem = check_dns1123(name)
    if problem is None and len(name) > MAX_NAME:
        return f"must be at most {MAX_NAME} characters (its Workloads are named <name>-<hash>-<suffix>)"
    return problem


def deployment_checks(workload_checks: Callable[[dict[str, Any]], list[Cause]]) -> Callable[
        [dict[str, Any]], list[Cause]]:
    """The checks of a Deployment spec, reusing the Workload's on its template (fields renamed to match)."""
    def check(spec: dict[str, Any]) -> list[Cause]:
        causes: list[Cause] = []
        rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        for name in ("maxSurge", "maxUnavailable"):
            if name in rolling and (problem := _intstr_problem(rolling[name])):
                causes.append(Cause(f"spec.strategy.rollingUpdate.{name}", problem))
        if not causes:
            surge = scaled(rolling.get("maxSurge", "25%"), 100, round_up=True)
            if surge == 0 and scaled(rolling.get("maxUnavailable", "25%"), 100, round_up=True) == 0:
                causes.append(Cause("spec.strategy.rollingUpdate.maxUnavailable", "must not be 0 when maxSurge is 0"))
        wanted = spec["selector"].get("matchLabels") or {}
        labels = spec["template"]["metadata"].get("labels") or {}
        if not wanted:
            causes.append(Cause("spec.selector.matchLabels", "required: at least one label"))
        missing = {k: v for k, v in wanted.items() if labels.get(k) != v}
        if missing:
            causes.append(Cause("spec.template.metadata.labels", "must match spec.selector.matchLabels; missing "
                                + ", ".join(f"{k}={v}" for k, v in sorted(missing.items()))))
        template_spec = spec["template"]["spec"]
        if template_spec.get("nodeName"):
            causes.append(Cause("spec.template.spec.nodeName", "must be empty: the scheduler places each replica"))
        causes += [Cause(f"spec.template.{c.field}", c.message) for c in workload_checks(template_spec)]
        return causes
    return check


def _condition(obj: Resource, type_: str) -> str:
    found = next((c for c in obj.status.get("conditions") or [] if c.get("type") == type_), None)
    return str(found.get("status", "Unknown")) if found else "Unknown"


def deployment_kind(workload_spec: Schema, workload_checks: Callable[[dict[str, Any]], list[Cause]]) -> Kind:
    """The Deployment kind, its template being a Workload spec (schema and checks passed in by kinds.py)."""
    spec: Schema = {"type": "object", "properties": {
        "replicas": {"type": "integer", "minimum": 0, "maximum": 10000, "default": 1},
        "selector": {"type": "object", "properties": {"matchLabels": LABELS}, "required": ["matchLabels"]},
        "template": {"type": "object", "properties": {
            "metadata": {"type": "object", "properties": {"labels": {**LABELS, "default": {}},
                                                          "annotations": {**ANNOTATIONS, "default": {}}},
                         "default": {}},
            "spec": workload_spec,
        }, "required": ["spec"]},
        "strategy": {"type": "object", "properties": {
            "type": {"type": "string", "enum": ["RollingUpdate"], "default": "RollingUpdate"},
            "rollingUpdate": {"type": "object", "properties": {
                "maxSurge": INT_OR_PERCENT, "maxUnavailable": INT_OR_PERCENT}, "default": {}},
        }, "default": {}},
        "minReadySeconds": {"type": "integer", "minimum": 0, "maximum": 86400, "default": 0},
        "progressDeadlineSeconds": {"type": "integer", "minimum": 1, "maximum": 86400, "default": 600},
        "revisionHistoryLimit": {"type": "integer", "minimum": 0, "maximum": 100, "default": 10},
        "paused": {"type": "boolean", "default": False},
        "autoRollback": {"type": "boolean", "default": False},
    }, "required": ["selector", "template"]}
    count: Schema = {"type": "integer", "minimum": 0}
    status: Schema = {"type": "object", "properties": {
        "replicas": count, "updatedReplicas": count, "readyReplicas": count, "availableReplicas": count,
        "unavailableReplicas": count, "observedGeneration": {"type": "integer"},
        "templateHash": {"type": "string"}, "currentRevision": count, "conditions": CONDITIONS,
        "revisions": {"type": "array", "items": {"type": "object", "properties": {
            "revision": count, "templateHash": {"type": "string"}, "template": {"type": "any"},
            "createdAt": TIME, "available": {"type": "boolean"}, "changeCause": {"type": "string"},
        }}},
        "lastRollback": {"type": "object", "properties": {
            "fromRevision": count, "toRevision": count, "reason": {"type": "string"}, "time": TIME,
            "generation": {"type": "integer"}}},
    }}
    return Kind(
        kind="Deployment", plural="deployments", namespaced=True, short_names=("deploy",),
        description="Replicas of one Workload template, rolled to a new template a few at a time "
                    "(and back, with autoRollback, when a rollout misses its progress deadline).",
        spec_schema=spec, status_schema=status, cross_checks=(deployment_checks(workload_checks),),
        name_check=check_name,
        columns=(
            ("NAME", lambda o: o.metadata.name),
            ("READY", lambda o: f"{o.status.get('readyReplicas', 0)}/{o.spec.get('replicas', 0)}"),
            ("UP-TO-DATE", lambda o: str(o.status.get("updatedReplicas", 0))),
            ("AVAILABLE", lambda o: str(o.status.get("availableReplicas", 0))),
            ("AGE", age),
        ),
        wide_columns=(
            ("IMAGE", lambda o: str(o.spec["template"]["spec"].get("image", ""))),
            ("REVISION", lambda o: str(o.status.get("currentRevision", ""))),
            ("PROGRESSING", lambda o: _condition(o, "Progressing")),
        ),
    )


class RolloutState(StrEnum):
    WAITING = "Waiting"  # the controller has not seen the latest spec yet
    PAUSED = "Paused"
    PROGRESSING = "Progressing"
    COMPLETE = "Complete"
    STALLED = "Stalled"  # it missed its progress deadline


@dataclass(frozen=True)
class Progress:
    """Where a Deployment's rollout stands: its state, what ``persys rollout status`` says, and the counts."""

    state: RolloutState
    message: str
    desired: int
    updated: int
    ready: int
    available: int
    total: int  # replicas of every revision
    revision: int

    def percent(self, count: int) -> int:
        return min(100, round(100 * count / self.desired)) if self.desired else 100


def progress(obj: Resource) -> Progress:
    """The rollout of Deployment ``obj``, as its status and conditions tell it."""
    spec, status = obj.spec, obj.status
    name, wanted = obj.metadata.name, int(spec.get("replicas", 0))
    updated, total = int(status.get("updatedReplicas") or 0), int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    counts = (wanted, updated, int(status.get("readyReplicas") or 0), available, total,
              int(status.get("currentRevision") or 0))
    conditions: list[dict[str, Any]] = status.get("conditions") or []
    progressing = next((c for c in conditions if c.get("type") == "Progressing"), {})
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return Progress(RolloutState.STALLED, f'deployment "{name}" exceeded its progress deadline: '
                        f'{progressing.get("message", "")}', *counts)
    if int(status.get("observedGeneration") or 0) < obj.metadata.generation:
        return Progress(RolloutState.WAITING, "Waiting for the deployment spec update to be observed...", *counts)
    if spec.get("paused"):
        return Progress(RolloutState.PAUSED, f'deployment "{name}" is paused; resume it to continue '
                        f"(persys rollout resume deployment {name})", *counts)
    if updated < wanted:
        return Progress(RolloutState.PROGRESSING, f'Waiting for deployment "{name}" rollout to finish: {updated} '
                        f"out of {wanted} new replicas have been updated...", *counts)
    if total > updated:
        return Progress(RolloutState.PROGRESSING, f'Waiting for deployment "{name}" rollout to finish: '
                        f"{total - updated} old replicas are pending termination...", *counts)
    if available < updated:
        return Progress(RolloutState.PROGRESSING, f'Waiting for deployment "{name}" rollout to finish: '
                        f"{available} of {updated} updated replicas are available...", *counts)
    return Progress(RolloutState.COMPLETE, f'deployment "{name}" successfully rolled out', *counts)
