"""Numbers in any schema: finite, and integers within 64 bits, wherever they appear (typed or ``any``)."""

from __future__ import annotations

from typing import Any

import pytest

from persys.errors import Cause
from persys.resources.schema import validate

NUMBER = {"type": "number"}
INTEGER = {"type": "integer"}
ANY = {"type": "object", "properties": {"x": {"type": "any"}}}


def causes_of(schema: dict[str, Any], value: Any) -> list[Cause]:
    causes: list[Cause] = []
    validate(schema, value, "spec", causes)
    return causes


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_numbers_must_be_finite(value: float) -> None:
    assert causes_of(NUMBER, value) == [Cause("spec", "must be a finite number (JSON has no NaN or Infinity)")]


@pytest.mark.parametrize(("value", "inside"), [(2**63, 2**63 - 1), (-(2**63) - 1, -(2**63)), (10**400, 0)])
def test_integers_must_fit_in_64_bits(value: int, inside: int) -> None:
    assert causes_of(INTEGER, value) == [Cause("spec", "must fit in 64 bits")]
    assert causes_of(INTEGER, inside) == []


def test_untyped_values_are_searched_for_bad_numbers() -> None:
    value = {"x": {"a": [1, float("nan")], "b": {"c": float("inf")}, "d": 2**64, "ok": [1.5, "NaN", True]}}
    assert sorted(c.field for c in causes_of(ANY, value)) == ["spec.x.a[1]", "spec.x.b.c", "spec.x.d"]


def test_deeply_nested_untyped_values_do_not_recurse() -> None:
    value: Any = float("nan")
    for _ in range(5000):
        value = [value]
    assert [c.message for c in causes_of(ANY, {"x": value})] == [
        "must be a finite number (JSON has no NaN or Infinity)"]
