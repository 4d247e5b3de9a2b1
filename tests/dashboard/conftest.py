"""Dashboard tests: an API server with every route (stop/start/reconcile, logs), a stand-in GitHub and a gateway
in the test's loop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from persys.api.server import default_routes
from persys.security.paths import HomePaths
from persys.store import Etcd
from persys.store.server import EtcdServer
from tests.gateway.conftest import gateway, github  # noqa: F401
from tests.support.cluster import ApiThread, RunningApi, pki_home  # noqa: F401


@pytest.fixture
def api(etcd: Etcd, etcd_server: EtcdServer, pki_home: HomePaths, tmp_path: Path) -> Iterator[RunningApi]:  # noqa: F811
    """The API over the session etcd with the routes ``persys server`` adds (reconciliation, logs, audit)."""
    thread = ApiThread(etcd_server.url, pki_home.home, extra_routes=default_routes()).start()
    try:
        yield RunningApi(thread, pki_home, tmp_path / "home")
    finally:
        thread.stop()
