"""A bounded schemathesis pass: every operation of ``/openapi.json``, fuzzed on the mTLS listener, never a 5xx.

The schema is read from the running API's plain listener, so the fuzz follows the routes the server
really has (all of ``persys server``'s, logs and reconciliation included). Requests go to the mTLS
listener with the admin certificate: admin may call every route, so cases reach the handlers
instead of stopping at a 403. Each operation gets schema-conforming and schema-violating cases with
free path parameters, then conforming ones pinned to an object that exists (re-created before every
case), so that updates, status writes, patches and deletes get past "not found"; a kind whose bare
object the server refuses (one needing more than ``SPECS`` gives) is named in the summary line
instead. Strings of the Persys formats are drawn from valid examples or any text.

Reproducible and bounded: Hypothesis runs derandomized (a fixed seed) with no example database, so
a failure printed in CI replays locally; ``CASES`` holds the pass to about a minute on a 2-core
machine. The 5xx found while building it are kept as plain tests in ``test_fuzz_regressions.py``.

The schemathesis pytest plugin (``from_fixture``) cannot run under this pytest, so the test drives
Hypothesis itself with the public ``APIOperation.as_strategy`` and ``Case.call_and_validate``.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.formats import unregister_string_format

from persys.api.app import PREFIX
from persys.api.server import default_routes
from persys.security.paths import HomePaths
from persys.store import Etcd
from persys.store.server import EtcdServer
from tests.support.cluster import ApiThread, RunningApi

CASES = 6000  # in all, shared among the passes: about 60 s here, however many kinds are served
MIN_EXAMPLES = 10  # per pass, once so many kinds are served that the share would be smaller
# generous, so that a loaded CI machine is not taken for a server error: a slow etcd answers 503 after ETCD_TIMEOUT
REQUEST_TIMEOUT = 30.0
ETCD_TIMEOUT = 10.0
# no shrinking: one request per step would let a failing run take minutes; the curl line it prints is enough
FUZZ = settings(derandomize=True, database=None, deadline=None,
                phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))

PINNED = {"namespace": "default", "name": "fuzz", "id": "fuzz"}
SPECS: dict[str, dict[str, Any]] = {  # what a valid object of a kind needs besides its name, when anything
    "workloads": {"spec": {"image": "busybox"}},
    "events": {"spec": {"involvedObject": {"kind": "Node", "name": "fuzz"}, "reason": "Fuzzed"}},
}
_OBJECT_PATH = re.compile(r".*/\{name\}")
_ID_ROUTE = ("/workloads/{id}", PREFIX + "/namespaces/{namespace}/workloads/{name}")  # reconciliation: a workload

# valid values of the Persys string formats (``persys.resources.formats``), or any text
VALID: dict[str, list[str]] = {
    "image": ["busybox", "persys/busybox:local", "registry.example.com:5000/team/app:1.2", "alpine@sha256:" + "0" * 64],
    "gitrepo": ["https://example.com/app.git", "git@example.com:team/app.git", "/srv/git/app"],
    "gitref": ["main", "v1.2.3", "refs/heads/feature/x"],
    "abspath": ["/", "/srv/app"],
    "innerpath": [".", "deploy", "deploy/compose.yaml"],
    "labelvalue": ["", "web", "v1.2"],
    "cpu": ["100m", "1", "0.5"], "cpucapacity": ["4", "500m"],
    "memory": ["64Mi", "1Gi", "1000"], "memorycapacity": ["8Gi", "512Mi"],
    "text": ["hello world"],
}


class WatchesEndAtHeaders(requests.Session):
    """A session that stops reading a watch once its status line and headers have arrived.

    ``?watch=true`` answers 200 and then streams for as long as the client listens (bookmarks keep
    it alive), so reading its body would never end; the status is all this pass checks.
    """

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        response = super().request(method, url, *args, **kwargs)
        if response.headers.get("Content-Type", "").startswith("application/x-ndjson"):
            response._content = b""  # what requests caches as the body once read
            response.close()
        return response


@pytest.fixture(name="full_api")
def full_api_fixture(etcd: Etcd, etcd_server: EtcdServer, pki_home: HomePaths, tmp_path: Path) -> Iterator[RunningApi]:
    """The API with every route module of ``persys server`` (logs, reconciliation), not only the object routes."""
    thread = ApiThread(etcd_server.url, pki_home.home, etcd_timeout=ETCD_TIMEOUT, extra_routes=default_routes()).start()
    try:
        yield RunningApi(thread, pki_home, tmp_path / "home")
    finally:
        thread.stop()


def admin_tls(api: RunningApi) -> dict[str, Any]:
    """The TLS arguments of a request as admin: trust the cluster CA, show the admin's certificate."""
    return {"verify": str(api.pki.ca_cert), "cert": (str(api.pki.cert("admin")), str(api.pki.key("admin")))}


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with WatchesEndAtHeaders() as opened:
        yield opened


@pytest.fixture
def formats() -> Iterator[None]:
    """Hypothesis strategies for the Persys formats, so that conforming cases are often valid objects."""
    for name, values in VALID.items():
        schemathesis.openapi.format(name, st.sampled_from(values) | st.text())
    yield
    for name in VALID:
        unregister_string_format(name)


def load_schema(api: RunningApi) -> Any:
    """The API's own OpenAPI document, aimed at its mTLS listener."""
    schema = schemathesis.openapi.from_url(api.plain_url + "/openapi.json", timeout=REQUEST_TIMEOUT)
    tls = admin_tls(api)
    schema.config.update(base_url=api.secure_url, tls_verify=tls["verify"], request_cert=tls["cert"][0],
                         request_cert_key=tls["cert"][1], request_timeout=REQUEST_TIMEOUT)
    return schema


def calls_later(operation: Any) -> bool:
    """Sort key: the log route first. Past validation it calls the workload's node, and once the fuzz has bound a
    workload to a node it made up, a 502 from that node's missing agent is the right answer, not a bug."""
    return not operation.path.endswith("/log")


def passes(operation: Any) -> list[tuple[GenerationMode, bool]]:
    """(mode, pinned) of each pass over ``operation``: conforming and violating cases with free path parameters,
    then conforming ones aimed at the pinned object. (Schemathesis finds no violating case to draw once the path
    is fixed: it keeps mutating the fixed parameters.)"""
    free = [(GenerationMode.POSITIVE, False), (GenerationMode.NEGATIVE, False)]
    return [*free, (GenerationMode.POSITIVE, True)] if "{" in operation.path else free


@dataclass
class Fuzzer:
    """Runs the passes over one API, counting the answers' status codes."""

    api: RunningApi
    session: requests.Session
    examples: int  # per pass
    codes: Counter[int] = field(default_factory=Counter)
    unpinned: set[str] = field(default_factory=set)  # objects no seed could create: their pinned passes are skipped

    def seed(self, path: str) -> bool:
        """Re-create (apply) the pinned object the operation at ``path`` acts on; False when the server refuses."""
        found = _OBJECT_PATH.match(path.replace(*_ID_ROUTE))
        if found is None:
            return True
        url = self.api.secure_url + found.group().format(**PINNED)
        body = {"metadata": {"name": PINNED["name"]}, **SPECS.get(url.split("/")[-2], {})}
        if self.session.put(url, json=body, timeout=REQUEST_TIMEOUT, **admin_tls(self.api)).ok:
            return True
        self.unpinned.add(found.group())
        return False

    def run(self, operation: Any, mode: GenerationMode, pinned: bool) -> None:
        """Send up to ``examples`` cases of ``mode`` to ``operation`` (aimed at the pinned object when ``pinned``).

        An operation whose only inputs are free strings (path parameters) has no schema-violating case."""
        fixed = {name: value for name, value in PINNED.items() if f"{{{name}}}" in operation.path} if pinned else {}
        if fixed and not self.seed(operation.path):
            return

        @settings(FUZZ, max_examples=self.examples)
        @given(case=operation.as_strategy(mode, path_parameters=fixed or None))
        def send(case: schemathesis.Case) -> None:
            if fixed:
                self.seed(operation.path)
            response = case.call_and_validate(session=self.session, checks=[not_a_server_error])
            self.codes[response.status_code] += 1

        try:
            send()
        except Unsatisfiable:
            if mode is not GenerationMode.NEGATIVE:
                raise


@pytest.mark.usefixtures("formats")
def test_no_operation_answers_5xx(full_api: RunningApi, session: requests.Session) -> None:
    started, failures = time.monotonic(), []
    operations = sorted((result.ok() for result in load_schema(full_api).get_all_operations()), key=calls_later)
    planned = [(operation, mode, pinned) for operation in operations for mode, pinned in passes(operation)]
    fuzzer = Fuzzer(full_api, session, examples=max(MIN_EXAMPLES, CASES // len(planned)))
    for operation, mode, pinned in planned:
        try:
            fuzzer.run(operation, mode, pinned)
        except (Exception, FailureGroup) as e:  # every pass runs; all failures are reported together
            failures.append(f"{operation.label} ({mode.value}, {'pinned' if pinned else 'free'}): {e}")
    print(f"fuzzed {len(operations)} operations in {len(planned)} passes of up to {fuzzer.examples} cases:"
          f" {fuzzer.codes.total()} requests in {time.monotonic() - started:.0f}s;"
          f" status codes {dict(sorted(fuzzer.codes.items()))}; not pinned: {sorted(fuzzer.unpinned) or 'none'}")
    assert not failures, "\n\n".join(failures)
