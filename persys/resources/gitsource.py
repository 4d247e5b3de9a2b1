"""What a compose app's git source may name: a repository URL git can only clone, and a ref name.

The agent hands ``spec.compose.repo`` and ``spec.compose.ref`` to git. A value starting with ``-``
is an option (``--upload-pack=…`` runs a command), and transports like ``ext::`` run programs, so
the API accepts only URLs of the schemes below, scp-like ``user@host:path`` and absolute local paths
(which the agent also clones), and ref names that ``git check-ref-format --allow-onelevel`` accepts
and that do not start with ``-``. The agent keeps its own, narrower checks as a second line.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

SCHEMES = ("https", "http", "ssh", "git", "file")
REF_MAX = 255
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.DOTALL)
_SCP_LIKE = re.compile(r"([^@/:\s]+@)?([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):[^:]\S*")
_REPO_FORMS = f"use a URL ({', '.join(s + '://' for s in SCHEMES)}), user@host:path or an absolute path"
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def _has_control(value: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)


def _check_url(scheme: str, rest: str) -> str | None:
    if scheme.lower() not in SCHEMES:
        return f"scheme {scheme!r} is not allowed: {_REPO_FORMS}"
    try:
        parts = urlsplit(f"{scheme}://{rest}")
    except ValueError as e:  # an unbalanced [ in the host
        return f"is not a valid URL: {e}"
    if scheme.lower() != "file" and not parts.hostname:
        return f"a {scheme} URL needs a host"
    if parts.password:
        return "must not carry a password: put the token in a Secret named by spec.compose.authSecret"
    return None


def check_repo(value: str) -> str | None:
    """None when git may clone ``value`` safely, else the message to show."""
    if _has_control(value):
        return "must not contain control characters"
    if value.startswith("-"):
        return "must not start with '-' (git would read it as an option)"
    if url := _URL.fullmatch(value):
        return _check_url(url.group(1), url.group(2))
    if value.startswith("/") or _SCP_LIKE.fullmatch(value):
        return None
    return f"is not an allowed git URL: {_REPO_FORMS}"


_SHA = re.compile(r"[0-9a-f]{40}")


def check_commit(value: str) -> str | None:
    """None when ``value`` is empty (the tip of the ref) or a full commit id: 40 lowercase hex digits."""
    if not value or _SHA.fullmatch(value):
        return None
    return "must be a full commit id: 40 lowercase hexadecimal digits"


def check_ref(value: str) -> str | None:
    """None when ``value`` is empty (the default branch) or a valid git ref name, else the message."""
    if not value:
        return None
    problem = _ref_problem(value)
    return f"is not a valid git ref name: {problem}" if problem else None


def _ref_problem(value: str) -> str | None:
    """The first ``git check-ref-format`` rule ``value`` breaks (plus: no leading '-', bounded length)."""
    if len(value) > REF_MAX:
        return f"longer than {REF_MAX} characters"
    if value.startswith("-"):
        return "starts with '-'"
    if bad := _REF_FORBIDDEN.search(value):
        return f"contains {bad.group()!r} (no control characters, spaces, ~ ^ : ? * [ or backslash)"
    for part, rule in (("..", "contains '..'"), ("@{", "contains '@{'"), ("//", "contains '//'")):
        if part in value:
            return rule
    if value == "@" or value.startswith("/") or value.endswith(("/", ".")):
        return "is '@', starts with '/' or ends with '/' or '.'"
    if any(c.startswith(".") or c.endswith(".lock") for c in value.split("/")):
        return "has a component starting with '.' or ending with '.lock'"
    return None
