"""Hostile manifests through ``persys apply``: each fails before anything is sent, naming the problem and
its line, exit code 1, no traceback, nothing stored (issue 10)."""

from __future__ import annotations

from pathlib import Path

from tests.support.cluster import RunningApi, cli

WEB = """\
apiVersion: persys.dev/v1
kind: Workload
metadata:
  name: web
spec:
  image: persys/busybox:local
  command: [sleep, "3600"]
"""


def refused(api: RunningApi, tmp_path: Path, text: str) -> str:
    """Apply ``text``; assert it failed cleanly with nothing stored; its stderr."""
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    code, out, err = cli(api.home, "apply", "-f", str(path))
    assert code == 1 and out == "" and "Traceback" not in err, (code, out, err)
    assert cli(api.home, "get", "workloads", "-o", "name")[1].split() == []
    return err


def bomb(levels: int) -> str:
    """A "billion laughs" document: each level an anchored list of ten aliases to the level before."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return WEB + "\n".join(lines) + "\n"


def test_duplicate_key_names_the_key_and_line(api: RunningApi, tmp_path: Path) -> None:
    err = refused(api, tmp_path, WEB + "  image: evil/other:1\n")
    assert "hostile.yaml line 8: duplicate key 'image'" in err


def test_alias_bomb_fails_fast(api: RunningApi, tmp_path: Path) -> None:
    err = refused(api, tmp_path, bomb(6))
    assert "expands to more than 100000 values through aliases" in err


def test_deep_nesting_is_refused_without_traceback(api: RunningApi, tmp_path: Path) -> None:
    err = refused(api, tmp_path, WEB + "  args: " + "[" * 1000 + "]" * 1000 + "\n")
    assert "hostile.yaml line 8: nested deeper than 64 levels" in err


def test_recursive_alias_is_refused(api: RunningApi, tmp_path: Path) -> None:
    err = refused(api, tmp_path, WEB + "  args: &loop [*loop]\n")
    assert "line 8: an alias refers to a node containing it" in err


def test_set_values_are_refused_without_traceback(api: RunningApi, tmp_path: Path) -> None:
    err = refused(api, tmp_path, WEB + "  args: !!set {a}\n")
    assert "line 8: set values cannot be sent as JSON" in err
