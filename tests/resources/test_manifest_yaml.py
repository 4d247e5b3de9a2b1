"""The manifest loader: duplicate keys, alias bombs, deep and recursive nesting, JSON-only values."""

from __future__ import annotations

import tracemalloc

import pytest

from persys.errors import BadRequest
from persys.resources.manifest import parse_documents


def refusal(text: str) -> str:
    with pytest.raises(BadRequest) as caught:
        parse_documents(text, "m.yaml")
    assert "not valid YAML" not in caught.value.message  # a refusal, not a syntax error
    return caught.value.message


def test_duplicate_key_names_key_and_line() -> None:
    text = "kind: Workload\nmetadata: {name: a}\nspec:\n  image: a\n  args: [x]\n  image: b\n"
    assert refusal(text) == "m.yaml line 6: duplicate key 'image'"


def test_duplicate_key_in_flow_mapping_but_merge_keys_may_be_overridden() -> None:
    assert refusal("spec: {a: 1, a: 2}\n") == "m.yaml line 1: duplicate key 'a'"
    docs = parse_documents("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n", "m.yaml")
    assert docs[0]["c"] == {"x": 3, "y": 2}


def test_billion_laughs_fails_fast_without_expanding() -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]  # 10**10 values
    tracemalloc.start()
    try:
        message = refusal("\n".join(lines) + "\n")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message == "m.yaml line 5: expands to more than 100000 values through aliases (an alias bomb?)"
    assert peak < 5 * 2**20


def test_thousand_deep_nesting_is_refused() -> None:
    assert refusal("a: " + "[" * 1000 + "]" * 1000 + "\n") == "m.yaml line 1: nested deeper than 64 levels"


def test_deep_block_nesting_is_refused() -> None:
    text = "".join("  " * i + f"k{i}:\n" for i in range(100))
    assert refusal(text) == "m.yaml line 64: nested deeper than 64 levels"


def test_aliases_chained_deeper_than_the_limit_are_refused() -> None:
    text = "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 100))
    assert "nested deeper than 64 levels through aliases" in refusal(text)


def test_recursive_alias_is_refused() -> None:
    assert "an alias refers to a node containing it" in refusal("a: &a [1, *a]\n")


@pytest.mark.parametrize("tag", ["!!set {a}", "!!binary aGk=", "!!omap [{a: 1}]", "!!pairs [{a: 1}]"])
def test_values_json_cannot_carry_are_refused(tag: str) -> None:
    assert "values cannot be sent as JSON" in refusal(f"a: {tag}\n")


def test_timestamps_stay_text() -> None:
    assert parse_documents("a: 2024-01-01\nb: 2024-01-01T10:00:00Z\n", "m.yaml") == [
        {"a": "2024-01-01", "b": "2024-01-01T10:00:00Z"}]
