"""How objects look on the terminal: tables from a kind's printer columns, YAML, JSON, names.

Secrets' values are masked unless the caller asked for them (``--show-secrets``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from persys.resources import Kind, Resource

MASK = "********"


def console() -> Console:
    """A console that never wraps table rows when writing to a pipe or file."""
    return Console(width=None if sys.stdout.isatty() else 250, highlight=False, soft_wrap=False)


def wire(kind: Kind, obj: Resource, show_secrets: bool = False) -> dict[str, Any]:
    data = kind.to_wire(obj)
    if kind.sensitive and not show_secrets:
        data[kind.spec_field] = {key: MASK for key in data.get(kind.spec_field) or {}}
    return data


def headers(kind: Kind, wide: bool, all_namespaces: bool) -> list[str]:
    names = [name for name, _ in kind.columns + (kind.wide_columns if wide else ())]
    return (["NAMESPACE"] if all_namespaces and kind.namespaced else []) + names


def row(kind: Kind, obj: Resource, wide: bool, all_namespaces: bool) -> list[str]:
    cells = [fn(obj) for _, fn in kind.columns + (kind.wide_columns if wide else ())]
    return ([obj.metadata.namespace] if all_namespaces and kind.namespaced else []) + cells


PLAIN_ROWS = 200  # above this many rows even a terminal gets plain lines: rich lays out 10,000 rows in seconds
GAP = "  "  # between columns, as rich's Table (box=None) puts them


def plain_line(cells: Sequence[str], widths: Sequence[int]) -> str:
    """One row as rich's borderless Table prints it: cells padded to their column, two spaces apart."""
    return GAP.join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()


class RowPrinter:
    """Prints a table, then (for ``get -w``) more rows aligned under it.

    A pipe, a file or a long listing gets plain aligned lines (as kubectl prints them); only a
    short listing on a terminal goes through rich, for its bold header.
    """

    def __init__(self, kind: Kind, wide: bool, all_namespaces: bool) -> None:
        self.kind, self.wide, self.all_namespaces = kind, wide, all_namespaces
        self.widths = [len(h) for h in headers(kind, wide, all_namespaces)]
        self.out = console()
        self.plain = not self.out.is_terminal  # once plain, later (-w) rows stay plain to stay aligned

    def _table(self, show_header: bool) -> Table:
        table = Table(box=None, show_header=show_header, pad_edge=False, header_style="bold")
        for name, width in zip(headers(self.kind, self.wide, self.all_namespaces), self.widths, strict=True):
            table.add_column(name, min_width=width, no_wrap=True)
        return table

    def print(self, objects: Sequence[Resource], show_header: bool = True, *, say_empty: bool = True) -> None:
        rows = [row(self.kind, obj, self.wide, self.all_namespaces) for obj in objects]
        for cells in rows:
            self.widths = [max(w, len(c)) for w, c in zip(self.widths, cells, strict=True)]
        if not rows and say_empty:
            click_echo("No resources found.", err=True)
            return
        self.plain = self.plain or len(rows) > PLAIN_ROWS
        if self.plain:
            self._print_plain(rows, show_header)
        else:
            self._print_rich(rows, show_header)
        sys.stdout.flush()

    def _print_rich(self, rows: list[list[str]], show_header: bool) -> None:
        table = self._table(show_header)
        for cells in rows:
            table.add_row(*(Text(cell) for cell in cells))  # cells are data, never rich markup
        self.out.print(table)

    def _print_plain(self, rows: list[list[str]], show_header: bool) -> None:
        lines = [plain_line(headers(self.kind, self.wide, self.all_namespaces), self.widths)] if show_header else []
        lines += [plain_line(cells, self.widths) for cells in rows]
        if lines:
            sys.stdout.write("\n".join(lines) + "\n")


def click_echo(text: str, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def dump(data: Any, output: str) -> str:
    if output == "json":
        return json.dumps(data, indent=2)
    return yaml.safe_dump(data, sort_keys=False).rstrip("\n")


def print_objects(kind: Kind, objects: Sequence[Resource], output: str, *, single: bool,
                  show_secrets: bool = False) -> None:
    """``-o json|yaml|name`` output of one object or a list."""
    if output == "name":
        for obj in objects:
            click_echo(f"{kind.singular}/{obj.metadata.name}")
        return
    items = [wire(kind, obj, show_secrets) for obj in objects]
    data = items[0] if single else {"apiVersion": "persys.dev/v1", "kind": "List", "items": items}
    click_echo(dump(data, output))
