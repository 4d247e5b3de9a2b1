"""The string formats a schema may name (``{"type": "string", "format": "image"}``), in one table.

Each format is a check returning None for a valid value, else the message the API reports under
the field's path. The rules themselves live with their subject (names, image references, git
sources, quantities); the two path rules, too small for a module of their own, live here.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from functools import partial

from persys.resources.gitsource import check_commit, check_ref, check_repo
from persys.resources.imageref import check_image
from persys.resources.names import check_dns1123, check_env_name, check_label_value, check_qualified_name
from persys.resources.quantity import CPU_REQUEST_LIMIT, MEMORY_REQUEST_LIMIT, check_quantity, parse_cpu, parse_memory

Check = Callable[[str], str | None]


def check_absolute_path(value: str) -> str | None:
    """None when ``value`` is an absolute path (a container's working directory)."""
    if "\0" in value:
        return "must not contain NUL"
    return None if value.startswith("/") else "must be an absolute path (starting with /)"


def check_inner_path(value: str) -> str | None:
    """None when ``value`` is a relative path that stays inside the directory it is relative to."""
    if "\0" in value:
        return "must not contain NUL"
    if value.startswith("/"):
        return "must be relative to the repository, not absolute"
    if escapes(value):
        return "must stay inside the repository (no '..' leading out of it)"
    return None


def escapes(path: str) -> bool:
    """Whether the relative ``path`` leads out of its directory once ``..`` are resolved."""
    normal = posixpath.normpath(path)
    return normal == ".." or normal.startswith("../")


def check_compose_service(value: str) -> str | None:
    """None when ``value`` can name a docker-compose service (letters, digits, ``.``, ``_``, ``-``)."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", value):
        return None
    return "must be a compose service name: letters, digits, '.', '_' or '-', at most 63"


def check_text(value: str) -> str | None:
    """None when ``value`` holds no NUL (which no environment, argument or file name can carry)."""
    return "must not contain NUL" if "\0" in value else None


FORMATS: dict[str, Check] = {
    "dns1123": check_dns1123,
    "labelkey": check_qualified_name,
    "labelvalue": check_label_value,
    "envname": check_env_name,
    "text": check_text,
    "image": check_image,
    "gitrepo": check_repo,
    "gitref": check_ref,
    "gitcommit": check_commit,
    "abspath": check_absolute_path,
    "innerpath": check_inner_path,
    "composeservice": check_compose_service,
    "cpu": partial(check_quantity, parse_cpu, limit=CPU_REQUEST_LIMIT),  # a workload's request: bounded
    "memory": partial(check_quantity, parse_memory, limit=MEMORY_REQUEST_LIMIT),
    "cpucapacity": partial(check_quantity, parse_cpu),  # what a node reports
    "memorycapacity": partial(check_quantity, parse_memory),
}
