"""The YAML loader for manifests: PyYAML's safe loader, refusing what would silently mislead or exhaust.

A manifest becomes a JSON body, so the loader keeps to what JSON holds and to what the API accepts:
- a duplicate key is an error naming the key and its line (PyYAML lets the last one win silently);
- aliases may not expand past ``MAX_VALUES`` values or nest past ``MAX_DEPTH`` (a "billion laughs"
  document is a few lines that expand to gigabytes once serialized), nor refer to themselves;
- explicit nesting stops at ``MAX_DEPTH`` while composing, before PyYAML's recursion overflows;
- timestamps stay strings (``2024-01-01`` is text to Persys) and ``!!set``, ``!!binary``, ``!!omap``
  and ``!!pairs``, which JSON cannot carry, are refused.
Each refusal is a ``Refused`` (a ``yaml.MarkedYAMLError``) whose ``problem_mark`` gives the line.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_DEPTH = 64  # the API refuses JSON bodies nested deeper; manifests nest about 8 deep
MAX_VALUES = 100_000  # values in one document after expanding aliases
_MERGE = "tag:yaml.org,2002:merge"
_NOT_JSON = ("set", "binary", "omap", "pairs")


class Refused(yaml.MarkedYAMLError):
    """Raised when a manifest is valid YAML that Persys will not load; ``problem`` says why."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class ManifestLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with the refusals above; use with ``yaml.load_all(text, ManifestLoader)``."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise Refused(f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        check_expansion(node)
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE:
                key = self.construct_object(key_node)
                if key in seen:
                    raise Refused(f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


def _as_text(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return loader.construct_scalar(node)  # type: ignore[arg-type]


def _not_json(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    raise Refused(f"{node.tag.rsplit(':', 1)[-1]} values cannot be sent as JSON: use a list, a mapping or a "
                  "string", node.start_mark)


ManifestLoader.add_constructor("tag:yaml.org,2002:timestamp", _as_text)
for _tag in _NOT_JSON:
    ManifestLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _not_json)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_expansion(root: yaml.Node) -> None:
    """Refused when ``root``, with every alias expanded, holds more than ``MAX_VALUES`` values, nests
    deeper than ``MAX_DEPTH`` or contains itself. Each shared node is measured once (no expansion), and
    the walk is iterative (aliases can chain deeper than Python recurses)."""
    measured: dict[int, tuple[int, int]] = {}  # node id -> (values, depth) once expanded
    ancestors: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            ancestors.discard(id(node))
            _measure(node, measured)
        elif id(node) in ancestors:
            raise Refused("an alias refers to a node containing it (a recursive structure)", node.start_mark)
        elif id(node) not in measured:
            ancestors.add(id(node))
            stack.append((node, True))
            stack += [(child, False) for child in _children(node) if id(child) not in measured]


def _measure(node: yaml.Node, measured: dict[int, tuple[int, int]]) -> None:
    parts = [measured[id(child)] for child in _children(node)]
    values, depth = 1 + sum(p[0] for p in parts), 1 + max((p[1] for p in parts), default=0)
    if values > MAX_VALUES:
        raise Refused(f"expands to more than {MAX_VALUES} values through aliases (an alias bomb?)", node.start_mark)
    if depth > MAX_DEPTH:
        raise Refused(f"nested deeper than {MAX_DEPTH} levels through aliases", node.start_mark)
    measured[id(node)] = (values, depth)
