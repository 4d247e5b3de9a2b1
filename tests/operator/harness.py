"""Running operators in tests: a connection with the operators-role certificate, a runner per block.

``run`` starts an operator under its own supervisor, on a free port for /metrics and /healthz,
and stops it (resigning its Lease) when the block ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from persys.client import ApiClient
from persys.operator import Connection, Operator, OperatorRunner
from tests.support.cluster import RunningApi

IDENTITY = "test-operator"  # issued by conftest's operator_identity, role operators


def connection(api: RunningApi, identity: str = IDENTITY) -> Connection:
    return Connection(api.secure_url, ca=api.pki.ca_cert, cert=api.pki.cert(identity), key=api.pki.key(identity))


def operator_client(api: RunningApi) -> ApiClient:
    """A plain client presenting the operators-role certificate (what the role may do)."""
    return api.client(IDENTITY)


@contextlib.asynccontextmanager
async def run(op: Operator, api: RunningApi, *, identity: str | None = None, lease_ttl: int = 15,
              **options: object) -> AsyncIterator[OperatorRunner]:
    """Run ``op`` against ``api`` (as ``operator_identity``) until the block ends."""
    runner = OperatorRunner(op, connection(api), identity=identity, lease_ttl=lease_ttl,
                            listen=("127.0.0.1", 0), **options)  # type: ignore[arg-type]
    async with runner:
        yield runner
