"""Gateway tests: the API server of support.cluster, a stand-in GitHub, and a gateway in the test's loop."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from persys.gateway.server import Gateway
from tests.gateway.helpers import gateway_config
from tests.support.cluster import RunningApi, api, pki_home  # noqa: F401
from tests.support.github import FakeGitHub


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    fake = await FakeGitHub().start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def gateway(api: RunningApi, github: FakeGitHub) -> AsyncIterator[Gateway]:  # noqa: F811
    component = Gateway(gateway_config(api, github))
    await component.start()
    try:
        yield component
    finally:
        await component.stop()
