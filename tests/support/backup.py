"""The ``Backup`` custom kind (group ``backup.example.com``) that custom-kind tests define, and its objects."""

from __future__ import annotations

import copy
from typing import Any

import yaml

GROUP = "backup.example.com"
NAME = f"backups.{GROUP}"
RD_PATH = f"/apis/persys.dev/v1/resourcedefinitions/{NAME}"
BACKUPS = f"/apis/{GROUP}/v1/namespaces/default/backups"

SPEC_SCHEMA: dict[str, Any] = {
    "type": "object", "description": "What to back up and how long to keep it.", "required": ["source"],
    "properties": {
        "source": {"type": "string", "description": "The workload whose data is backed up.", "minLength": 1},
        "schedule": {"type": "string", "pattern": "^@(hourly|daily|weekly)$", "default": "@daily"},
        "retention": {"type": "object", "description": "How long backups are kept.", "default": {},
                      "properties": {"days": {"type": "integer", "minimum": 0, "maximum": 3650, "default": 7,
                                              "description": "Days to keep each backup."}}},
        "target": {"type": "string", "enum": ["local", "s3"], "nullable": True},
        "options": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "tags": {"type": "array", "maxItems": 5, "items": {"type": "string", "maxLength": 20}},
    },
}
DEFINITION: dict[str, Any] = {
    "apiVersion": "persys.dev/v1", "kind": "ResourceDefinition", "metadata": {"name": NAME},
    "spec": {
        "group": GROUP, "scope": "Namespaced",
        "names": {"kind": "Backup", "plural": "backups", "singular": "backup", "shortNames": ["bk"]},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "subresources": {"status": {}},
            "additionalPrinterColumns": [
                {"name": "Source", "type": "string", "jsonPath": ".spec.source"},
                {"name": "Days", "type": "integer", "jsonPath": ".spec.retention.days"},
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            ],
            "schema": {"openAPIV3Schema": {
                "type": "object", "description": "A backup of a workload's data.",
                "properties": {
                    "spec": SPEC_SCHEMA,
                    "status": {"type": "object", "properties": {
                        "phase": {"type": "string", "enum": ["Pending", "Ready", "Failed"]},
                        "lastRun": {"type": "string", "nullable": True}}},
                },
            }},
        }],
    },
}


def definition(**changes: Any) -> dict[str, Any]:
    """A copy of the Backup definition with ``spec`` fields replaced (``names=…``, ``group=…``)."""
    out = copy.deepcopy(DEFINITION)
    out["spec"].update(changes)
    return out


def backup(name: str, namespace: str = "default", labels: dict[str, str] | None = None,
           **spec: Any) -> dict[str, Any]:
    """A Backup manifest; ``source`` defaults to ``web``."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": f"{GROUP}/v1", "kind": "Backup", "metadata": meta, "spec": {"source": "web", **spec}}


def as_yaml(*documents: dict[str, Any]) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in documents)
