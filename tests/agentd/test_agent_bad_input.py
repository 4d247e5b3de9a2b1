"""Hostile requests to the agent answer a 4xx ``Status`` naming the problem, never a 500."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from agent_support import KEY_ID, SECRET, new_uid

from persys.agentd.daemon import Agent
from persys.agentd.simulated import SimulatedRuntime, SimulationConfig
from persys.errors import TerminalError
from persys.security.hmac import sign
from tests.support.workloads import agent_workload


async def signed(agent: Agent, method: str, path_qs: str, body: bytes = b"") -> tuple[int, dict[str, Any]]:
    """One signed request with an arbitrary body or query; (status, the JSON answer)."""
    headers = {"Authorization": sign(method, path_qs, body, KEY_ID, SECRET)}
    url = f"{agent.url}{path_qs}"
    async with aiohttp.ClientSession() as session, \
            session.request(method, url, data=body or None, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


def refused(answer: tuple[int, dict[str, Any]], code: int, *words: str) -> None:
    status, body = answer
    assert status == code and body["kind"] == "Status" and body["code"] == code, answer
    assert all(word in body["message"] for word in words), answer


@pytest.mark.parametrize("body", [
    b"[" * 100_000,                                  # past the interpreter's recursion limit
    b'{"spec": {"env": ' + b"[" * 80 + b"]" * 80 + b"}}",  # parses, but deeper than any manifest
    b'{"a": ' * 100_000,
])
async def test_deeply_nested_bodies_are_400(start_agent, body: bytes) -> None:  # type: ignore[no-untyped-def]
    agent = await start_agent()
    refused(await signed(agent, "POST", f"/v1/workloads/{new_uid()}", body), 400, "nests deeper than 64")


async def test_bad_json_and_wrong_shapes_are_400(start_agent) -> None:  # type: ignore[no-untyped-def]
    agent = await start_agent()
    refused(await signed(agent, "POST", f"/v1/workloads/{new_uid()}", b"{not json"), 400, "not valid JSON")
    status, _ = await signed(agent, "POST", f"/v1/workloads/{new_uid()}", b"[1, 2]")
    assert 400 <= status < 500


@pytest.mark.parametrize("tail", ["nan", "inf", "-inf", "abc", "-1", "1.5", "1e400", "10001", "9" * 5000,
                                  "%D9%A1%D9%A2", "", "%20"])
async def test_bad_log_tails_are_400(start_agent, client_for, tail: str) -> None:  # type: ignore[no-untyped-def]
    agent = await start_agent()
    client = client_for(agent)
    uid = new_uid()
    await client.wait(await client.apply(agent_workload(uid, agent.config.name)), 10)
    for follow in ("", "&follow=1"):
        refused(await signed(agent, "GET", f"/v1/workloads/{uid}/logs?tail={tail}{follow}"), 400, "tail")


async def test_good_log_tails_still_answer(start_agent, client_for) -> None:  # type: ignore[no-untyped-def]
    agent = await start_agent()
    client = client_for(agent)
    uid = new_uid()
    await client.wait(await client.apply(agent_workload(uid, agent.config.name)), 10)
    for tail in (0, 5, 10_000):
        assert isinstance(await client.logs(uid, tail=tail), str)


@pytest.mark.parametrize("wait", ["nan", "inf", "abc", "-1"])
async def test_bad_operation_waits_are_400(start_agent, wait: str) -> None:  # type: ignore[no-untyped-def]
    agent = await start_agent()
    refused(await signed(agent, "GET", f"/v1/operations/x?wait={wait}"), 400, "wait")


async def test_routes_methods_and_sizes_answer_their_own_codes(start_agent) -> None:  # type: ignore[no-untyped-def]
    agent = await start_agent()
    refused(await signed(agent, "GET", "/v1/nowhere"), 404, "no route GET /v1/nowhere")
    status, body = await signed(agent, "PUT", "/v1/events")
    assert status == 405 and body["reason"] == "MethodNotAllowed", body
    too_large = b" " * (4 * 1024 * 1024 + 1)
    status, body = await signed(agent, "POST", f"/v1/workloads/{new_uid()}", too_large)
    assert status == 413 and body["reason"] == "RequestEntityTooLarge", body


class Broken(SimulatedRuntime):
    """A runtime whose reads fail the way a bug would, or with a controller-only signal."""

    async def list(self):  # type: ignore[no-untyped-def]
        raise KeyError("a bug")

    async def get(self, uid: str):  # type: ignore[no-untyped-def]
        raise TerminalError(KeyError(uid))


async def test_unexpected_errors_are_a_500_status_and_terminal_is_not_http(start_agent) -> None:  # type: ignore[no-untyped-def]
    agent = await start_agent(lambda node, hub: Broken(node, hub, SimulationConfig()))
    refused(await signed(agent, "GET", "/v1/workloads"), 500, "internal error: KeyError")
    status, body = await signed(agent, "GET", f"/v1/workloads/{new_uid()}")
    assert (status, body["reason"], body["message"]) == (500, "InternalError", "internal error: TerminalError")
