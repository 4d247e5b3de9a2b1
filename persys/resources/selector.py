"""Label selectors as ``kubectl -l`` writes them: ``app=web,tier!=db,env in (a,b),!legacy,team``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from persys.errors import Invalid

Requirement = Callable[[Mapping[str, str]], bool]

_SET = re.compile(r"^\s*(!?)\s*([A-Za-z0-9._/-]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ = re.compile(r"^\s*([A-Za-z0-9._/-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([A-Za-z0-9._/-]+)\s*$")


def _split(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


def _requirement(term: str) -> Requirement:
    if m := _SET.match(term):
        key, op = m.group(2), m.group(3)
        values = {v.strip() for v in m.group(4).split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if m := _EQ.match(term):
        key, op, value = m.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if m := _EXISTS.match(term):
        negate, key = m.group(1) == "!", m.group(2)
        return lambda labels: (key in labels) != negate
    raise Invalid(f"invalid label selector term {term.strip()!r}", causes=[])


class Selector:
    """A parsed label selector; an empty selector matches everything."""

    def __init__(self, text: str = "") -> None:
        self.text = text
        self._requirements = [_requirement(term) for term in _split(text or "")]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(req(labels) for req in self._requirements)

    def __bool__(self) -> bool:
        return bool(self._requirements)
