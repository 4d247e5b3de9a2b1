"""A PKI made by ``persys pki init`` and an API server on free ports, for API and CLI tests.

The server runs in a thread with its own event loop, so that both async tests (ApiClient in
the test's loop) and CLI tests (click's CliRunner calling ``asyncio.run``) can talk to it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from persys.api import ApiContext, ApiServer
from persys.api.app import RouteAdder
from persys.api.audit.auditor import Auditor, AuditSettings
from persys.api.server import tls_from_home
from persys.api.watchcache import HISTORY
from persys.cli.main import main
from persys.client import ApiClient
from persys.security.keyring import Keyring
from persys.security.paths import HomePaths
from persys.store import Etcd
from persys.store.server import EtcdServer


class ApiThread:
    """One API server (plain + mTLS on free ports) over ``etcd_url``, in a thread of its own."""

    def __init__(self, etcd_url: str, home: Path, *, bookmark_interval: float = 1.0, etcd_timeout: float = 2.0,
                 extra_routes: Sequence[RouteAdder] = (), audit: AuditSettings | None = None,
                 watch_history: int = HISTORY, hmac_secret: bytes | Keyring | None = None,
                 hmac_refresh_seconds: float = 10.0) -> None:
        self.etcd_url, self.home = etcd_url, home
        self.watch_history = watch_history
        self.hmac_secret = hmac_secret  # what GET /bootstrap/node-config hands a joining node
        self.hmac_refresh_seconds = hmac_refresh_seconds
        self.audit = audit
        self.bookmark_interval, self.etcd_timeout = bookmark_interval, etcd_timeout
        self.extra_routes = extra_routes
        self.server: ApiServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="persys-api", daemon=True)

    @property
    def plain_url(self) -> str:
        assert self.server is not None
        return self.server.plain_url

    @property
    def secure_url(self) -> str:
        assert self.server is not None
        return self.server.secure_url

    def start(self) -> ApiThread:
        self._thread.start()
        if not self._ready.wait(20) or self._error is not None:
            raise RuntimeError(f"API server did not start: {self._error!r}")
        return self

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as e:  # reported to start()
            self._error = e
            self._ready.set()
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        etcd = Etcd(self.etcd_url, timeout=self.etcd_timeout)
        ctx = ApiContext(etcd, bookmark_interval=self.bookmark_interval, watch_history=self.watch_history,
                         audit=Auditor(self.audit) if self.audit is not None else None, hmac_secret=self.hmac_secret,
                         hmac_refresh_seconds=self.hmac_refresh_seconds)
        self.server = ApiServer(ctx, tls_from_home(self.home), listen=("127.0.0.1", 0),
                                secure_listen=("127.0.0.1", 0), extra_routes=self.extra_routes)
        try:
            await self.server.start()
            self._ready.set()
            await self._stop.wait()
        finally:
            await self.server.stop()
            await etcd.close()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)
        assert not self._thread.is_alive(), "API server thread did not stop"


class RunningApi:
    """An API server for one test, with a home whose config.yaml points at it."""

    def __init__(self, thread: ApiThread, pki_home: HomePaths, home: Path) -> None:
        self.thread, self.pki, self.home = thread, pki_home, home
        config = {"server": thread.secure_url, "ca": str(pki_home.ca_cert),
                  "cert": str(pki_home.cert("admin")), "key": str(pki_home.key("admin"))}
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.yaml").write_text(yaml.safe_dump(config))

    @property
    def plain_url(self) -> str:
        return self.thread.plain_url

    @property
    def secure_url(self) -> str:
        return self.thread.secure_url

    def client(self, identity: str = "admin", home: HomePaths | None = None) -> ApiClient:
        """An mTLS client presenting ``identity``'s certificate (admin, controller, node-n1, …)."""
        paths = home or self.pki
        return ApiClient(self.secure_url, ca=self.pki.ca_cert, cert=paths.cert(identity), key=paths.key(identity))


def cli(home: Path, *args: str, input: str | None = None,
        env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``persys --home HOME ARGS…`` in-process; (exit code, stdout, stderr)."""
    result = CliRunner().invoke(main, ["--home", str(home), *args], input=input, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="session")
def pki_home(tmp_path_factory: pytest.TempPathFactory) -> HomePaths:
    """A cluster home made by ``persys pki init``, plus an agent certificate for node ``n1``."""
    home = tmp_path_factory.mktemp("persys-home")
    code, out, err = cli(home, "pki", "init")
    assert code == 0, out + err
    code, out, err = cli(home, "pki", "issue", "--identity", "node-n1", "--role", "agents")
    assert code == 0, out + err
    return HomePaths(home)


@pytest.fixture
def api(etcd: Etcd, etcd_server: EtcdServer, pki_home: HomePaths, tmp_path: Path) -> Iterator[RunningApi]:
    """The API over the session etcd (keyspace cleaned by ``etcd``), started and stopped per test."""
    thread = ApiThread(etcd_server.url, pki_home.home).start()
    try:
        yield RunningApi(thread, pki_home, tmp_path / "home")
    finally:
        thread.stop()


async def raw_request(api: RunningApi, method: str, path: str, *, body: bytes | None = None,
                      headers: dict[str, str] | None = None, identity: str = "admin",
                      plain: bool = False) -> tuple[int, bytes, Mapping[str, str]]:
    """One HTTP request with an arbitrary body (bad JSON, huge bodies); (status, body, headers)."""
    import aiohttp

    from persys.security.tls import client_context

    base = api.plain_url if plain else api.secure_url
    ssl_context = None if plain else client_context(api.pki.ca_cert, api.pki.cert(identity), api.pki.key(identity))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_context or False)) as session, \
            session.request(method, base + path, data=body, headers=headers or {}) as resp:
        return resp.status, await resp.read(), resp.headers.copy()
