"""Manifests: YAML (multi-document) from a file, a directory of files, or stdin.

Loaded with ``ManifestLoader`` (``manifest_yaml``), which refuses duplicate keys, alias bombs and deep
nesting with the line they are on, so a bad file fails here, clearly, before anything is sent.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from persys.errors import BadRequest
from persys.resources.manifest_yaml import ManifestLoader, Refused

_SUFFIXES = (".yaml", ".yml", ".json")


def parse_documents(text: str, source: str) -> list[dict[str, Any]]:
    """Every non-empty document in ``text``; a YAML error or refusal names the source and the line."""
    try:
        docs = [doc for doc in yaml.load_all(text, ManifestLoader) if doc is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        what = "" if isinstance(e, Refused) else "not valid YAML: "
        raise BadRequest(f"{source}{where}: {what}{getattr(e, 'problem', e)}") from e
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise BadRequest(f"{source}: document {i + 1} is not a mapping (got {type(doc).__name__})")
        if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            docs[i : i + 1] = doc["items"]
    return docs


def load(path: str) -> list[tuple[str, dict[str, Any]]]:
    """(source, document) pairs from ``path``: a file, a directory (sorted, recursive) or ``-``."""
    if path == "-":
        return [("<stdin>", doc) for doc in parse_documents(sys.stdin.read(), "<stdin>")]
    target = Path(path)
    if target.is_dir():
        files = sorted(p for p in target.rglob("*") if p.suffix in _SUFFIXES and p.is_file())
    elif target.is_file():
        files = [target]
    else:
        raise BadRequest(f"{path}: no such file or directory")
    out: list[tuple[str, dict[str, Any]]] = []
    for file in files:
        out += [(str(file), doc) for doc in parse_documents(file.read_text(), str(file))]
    return out
