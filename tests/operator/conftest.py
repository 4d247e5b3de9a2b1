"""Operator tests: the SDK against a real API (``tests.support.cluster``) over the session's etcd.

``operator_identity`` is a certificate of role ``operators`` issued the way a user issues one
(``persys pki issue --identity test-operator --role operators``); ``harness.run`` runs operators on it.
"""

from __future__ import annotations

import pytest

from persys.security.paths import HomePaths
from tests.operator.harness import IDENTITY
from tests.support.cluster import api, cli, pki_home  # noqa: F401


@pytest.fixture(scope="session", autouse=True)
def operator_identity(pki_home: HomePaths) -> str:  # noqa: F811
    code, out, err = cli(pki_home.home, "pki", "issue", "--identity", IDENTITY, "--role", "operators")
    assert code == 0, out + err
    return IDENTITY
