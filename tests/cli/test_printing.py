"""Table output: plain aligned lines (pipes, long listings) look like rich's table, and ``-w`` rows stay aligned."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from persys.cli import printing
from persys.cli.printing import PLAIN_ROWS, RowPrinter, headers, row
from persys.resources import REGISTRY, Resource
from tests.support.workloads import workload

KIND = REGISTRY.get("Workload")


def listed(name: str, namespace: str = "default", phase: str = "Running", node: str = "n1") -> Resource:
    """A workload as ``persys get`` lists it: bound to ``node``, in ``phase``, restarted twice."""
    return workload(name, namespace=namespace, nodeName=node, status={"phase": phase, "restarts": 2})


def rich_lines(objects: list[Resource], all_namespaces: bool) -> list[str]:
    """What the rich Table (the output before plain lines) prints for ``objects``."""
    names = headers(KIND, False, all_namespaces)
    rows = [row(KIND, o, False, all_namespaces) for o in objects]
    out = io.StringIO()
    console = Console(file=out, width=250, highlight=False, soft_wrap=False)
    printer = RowPrinter(KIND, False, all_namespaces)
    printer.widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    table = printer._table(True)
    for cells in rows:
        table.add_row(*cells)
    console.print(table)
    return [line.rstrip() for line in out.getvalue().splitlines()]


OBJECTS = [listed("web"), listed("a-much-longer-name", "team", "Pending", "<none>"), listed("db", phase="Failed")]


@pytest.mark.parametrize("all_namespaces", [False, True])
def test_plain_lines_match_the_rich_table(capsys: pytest.CaptureFixture[str], all_namespaces: bool) -> None:
    RowPrinter(KIND, False, all_namespaces).print(OBJECTS)
    out = capsys.readouterr().out
    assert out.splitlines() == rich_lines(OBJECTS, all_namespaces)
    assert out.splitlines()[0].split()[:2] == (["NAMESPACE", "NAME"] if all_namespaces else ["NAME", "PHASE"])


def test_watch_rows_stay_aligned_under_the_header(capsys: pytest.CaptureFixture[str]) -> None:
    printer = RowPrinter(KIND, False, True)
    printer.print(OBJECTS[:1])
    printer.print([listed("db", phase="Failed")], show_header=False)  # narrower cells: padded
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["NAME", "web", "db"]
    starts = [[m.start() for m in re.finditer(r"\S+", line)] for line in lines]
    assert starts[0] == starts[1] == starts[2]


def test_cells_print_literally(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    RowPrinter(KIND, False, False).print([listed("web", phase="[bold]x[/bold]")])
    assert "[bold]x[/bold]" in capsys.readouterr().out
    screen = io.StringIO()
    monkeypatch.setattr(printing, "console", lambda: Console(file=screen, force_terminal=True, color_system=None))
    RowPrinter(KIND, False, False).print([listed("web", phase="[bold]x[/bold]")])
    assert "[bold]x[/bold]" in screen.getvalue()


def test_empty_listing_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    RowPrinter(KIND, False, False).print([])
    assert capsys.readouterr() == ("", "No resources found.\n")
    RowPrinter(KIND, False, False).print([], say_empty=False)  # get -w: the header, then rows as they come
    assert capsys.readouterr().out.split() == headers(KIND, False, False)


def test_terminal_gets_rich_for_short_listings_plain_for_long(capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(printing, "console",
                        lambda: Console(file=screen, force_terminal=True, width=250, highlight=False, soft_wrap=False))
    short = RowPrinter(KIND, False, False)
    short.print(OBJECTS)
    assert "web" in screen.getvalue() and capsys.readouterr().out == ""
    many = [listed(f"w{i}") for i in range(PLAIN_ROWS + 1)]
    long = RowPrinter(KIND, False, False)
    long.print(many)
    long.print([listed("later")], show_header=False)  # -w rows after a plain listing stay plain
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(many) + 2 and lines[0].split()[0] == "NAME" and lines[-1].split()[0] == "later"
