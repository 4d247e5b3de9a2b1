"""The impersonation headers, as the gateway sends them and the API reads them (Kubernetes' names).

``Impersonate-User`` names the user a request acts for (``github:octocat``); ``Impersonate-Group``,
repeated, each of its groups (``github-org:acme``, ``github-team:acme/ops``). The API trusts them
from the gateway role only (``persys.api.impersonation``); the client sends them with ``headers``.
"""

from __future__ import annotations

from collections.abc import Iterable

IMPERSONATE_USER = "Impersonate-User"
IMPERSONATE_GROUP = "Impersonate-Group"


def headers(user: str, groups: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The header lines that make a gateway's request act for ``user`` in ``groups`` (one line per group)."""
    return [(IMPERSONATE_USER, user), *((IMPERSONATE_GROUP, group) for group in groups)]
