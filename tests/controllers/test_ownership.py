"""Each status field has one owner: checked on the source, so a new writer cannot slip in unseen."""

from __future__ import annotations

import ast
from pathlib import Path

import persys.controllers
from persys.controllers.phase import OBSERVED

PACKAGE = Path(persys.controllers.__file__).parent
DERIVED = ("phase", "message")
OWNERS = {field: {"status.py"} for field in OBSERVED} | {field: {"phase.py"} for field in DERIVED}


def _is_status(node: ast.expr) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "status") or (isinstance(node, ast.Name)
                                                                          and node.id == "status")


def _written_fields(tree: ast.AST) -> set[str]:
    """Constant keys assigned, deleted or popped on a subscripted ``status`` anywhere in ``tree``."""
    written: set[str] = set()
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "pop" \
                and _is_status(node.func.value) and node.args and isinstance(node.args[0], ast.Constant):
            written.add(str(node.args[0].value))
        for target in targets:
            if isinstance(target, ast.Subscript) and _is_status(target.value) \
                    and isinstance(target.slice, ast.Constant):
                written.add(str(target.slice.value))
    return written


def test_only_the_owner_writes_observed_and_derived_fields() -> None:
    trespass = []
    for module in sorted(PACKAGE.glob("*.py")):
        for field in _written_fields(ast.parse(module.read_text())) & set(OWNERS):
            if module.name not in OWNERS[field]:
                trespass.append(f"{module.name} writes status.{field}")
    assert not trespass, trespass


def test_the_check_sees_a_write() -> None:
    source = 'obj.status["phase"] = "x"\ndel status["containerState"]\nw.status.pop("exitCode")\nw.spec["image"] = 1'
    assert _written_fields(ast.parse(source)) == {"phase", "containerState", "exitCode"}


def test_controllers_never_import_each_other() -> None:
    controllers = {m.stem for m in PACKAGE.glob("*.py") if "(Controller)" in m.read_text()}
    assert {"scheduler", "reconciler", "status", "monitor", "dnsregistrar"} <= controllers
    imports = []
    for name in sorted(controllers):
        for node in ast.walk(ast.parse((PACKAGE / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("persys.controllers."):
                if node.module.rsplit(".", 1)[1] in controllers:
                    imports.append(f"{name} imports {node.module}")
    assert not imports, imports
