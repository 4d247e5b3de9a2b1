"""Finding the ``Operator`` a user wrote: in a file (``backup.py``) or an importable module (``backup.op``).

``persys operator run`` takes either, optionally with ``:attribute`` when a module defines more
than one Operator. A file is imported under a name of its own with its directory on
``sys.path``, so that it can import the modules beside it, as ``python backup.py`` would.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from persys.errors import BadRequest
from persys.operator.operator import Operator


def load_operator(target: str) -> Operator:
    """The Operator ``target`` names: ``FILE.py``, ``module``, or either with ``:attribute``."""
    where, _, attribute = target.partition(":")
    module = _import_file(Path(where)) if where.endswith(".py") or "/" in where else _import_module(where)
    if attribute:
        found = getattr(module, attribute, None)
        if not isinstance(found, Operator):
            raise BadRequest(f"{target}: {attribute!r} is not an Operator")
        return found
    operators = [value for value in vars(module).values() if isinstance(value, Operator)]
    if len(operators) != 1:
        names = ", ".join(sorted(op.name for op in operators)) or "none"
        raise BadRequest(f"{where} must define exactly one Operator (found: {names}); name one as {where}:NAME")
    return operators[0]


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise BadRequest(f"{path}: no such file")
    name = f"persys_operator_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BadRequest(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent.absolute()))
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        raise BadRequest(f"cannot import {name!r}: {e}; give a file (backup.py) or a module on PYTHONPATH") from e
