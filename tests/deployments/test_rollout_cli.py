"""``persys scale`` and ``persys rollout`` against a cluster of hollow nodes, and the bad input
a Deployment is refused for (each error naming its field)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from tests.deployments.conftest import RolloutCluster
from tests.deployments.watching import deployment, wait_rolled_out
from tests.support.cluster import RunningApi, cli, raw_request
from tests.support.eventually import eventually

HOLLOW = pytest.mark.parametrize("rollout_cluster", ["hollow"], indirect=True)
V1, V2 = "persys/busybox:local", "persys/busybox:v2"
BROKEN = "127.0.0.1:9/persys-broken:1"


async def persys(home: Path, *args: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(cli, home, *args)


BAD = [
    # (what is wrong, spec change, field named, words in the message)
    ("selector does not match the template", {"selector": {"matchLabels": {"app": "other"}}},
     "spec.template.metadata.labels", "must match spec.selector.matchLabels; missing app=other"),
    ("surge over 100%", {"strategy": {"rollingUpdate": {"maxSurge": "150%"}}},
     "spec.strategy.rollingUpdate.maxSurge", "150% is over 100%"),
    ("unavailable over 100%", {"strategy": {"rollingUpdate": {"maxUnavailable": "101%"}}},
     "spec.strategy.rollingUpdate.maxUnavailable", "101% is over 100%"),
    ("not a percentage", {"strategy": {"rollingUpdate": {"maxSurge": "lots"}}},
     "spec.strategy.rollingUpdate.maxSurge", "neither an integer nor a percentage"),
    ("both zero", {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}},
     "spec.strategy.rollingUpdate.maxUnavailable", "must not be 0 when maxSurge is 0"),
    ("negative replicas", {"replicas": -1}, "spec.replicas", "must be 0-10000"),
    ("template without an image", {"template": {"metadata": {"labels": {"app": "bad"}}, "spec": {"command": ["x"]}}},
     "spec.template.spec.image", "required for type container"),
    ("template pinned to a node", {"template": {"metadata": {"labels": {"app": "bad"}},
                                                "spec": {"image": V1, "nodeName": "n1"}}},
     "spec.template.spec.nodeName", "must be empty"),
]


@pytest.mark.parametrize(("why", "change", "field", "words"), BAD, ids=[row[0] for row in BAD])
async def test_bad_deployments_are_refused_naming_the_field(api: RunningApi, tmp_path: Path, why: str,
                                                            change: dict[str, object], field: str, words: str) -> None:
    document = deployment("bad")
    document["spec"].update(change)
    status, body, _ = await raw_request(api, "PUT", "/apis/persys.dev/v1/namespaces/default/deployments/bad",
                                        body=json.dumps(document).encode(),
                                        headers={"Content-Type": "application/json"})
    assert status == 422
    causes = json.loads(body)["details"]["causes"]
    assert any(c["field"] == field and words in c["message"] for c in causes), causes
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump(document))
    code, out, err = await persys(api.home, "apply", "-f", str(manifest))
    assert code == 1 and field in err and "Traceback" not in out + err


async def test_a_long_name_is_refused(api: RunningApi) -> None:
    document = deployment("d" * 47)
    status, body, _ = await raw_request(api, "PUT", f"/apis/persys.dev/v1/namespaces/default/deployments/{'d' * 47}",
                                        body=json.dumps(document).encode(),
                                        headers={"Content-Type": "application/json"})
    assert status == 422 and json.loads(body)["details"]["causes"][0]["field"] == "metadata.name"


@HOLLOW
async def test_scale_status_history_undo(rollout_cluster: RolloutCluster, api: RunningApi) -> None:
    client, home = rollout_cluster.client, api.home
    await client.apply_raw(deployment("web", replicas=2))
    await wait_rolled_out(client, "web", 2, V1)
    code, out, _ = await persys(home, "scale", "deployment", "web", "--replicas", "4")
    assert (code, out.strip()) == (0, "deployment/web scaled to 4")
    await wait_rolled_out(client, "web", 4, V1)
    code, _, err = await persys(home, "scale", "workload", "web", "--replicas", "4")
    assert code == 1 and "works on deployments, not 'workload'" in err
    code, _, err = await persys(home, "scale", "deployment", "web", "--replicas", "-1")
    assert code == 2 and "--replicas" in err

    await client.apply_raw(deployment("web", replicas=4, image=V2))
    code, out, err = await persys(home, "rollout", "status", "deployment", "web", "--timeout", "60")
    assert code == 0, err
    assert out.strip().splitlines()[-1] == 'deployment "web" successfully rolled out'
    await wait_rolled_out(client, "web", 4, V2)
    code, out, _ = await persys(home, "rollout", "history", "deployment", "web")
    rows = [line.split()[:3] for line in out.strip().splitlines()[2:]]
    assert rows == [["1", V1, "yes"], ["2", V2, "yes"]]
    code, out, _ = await persys(home, "rollout", "history", "deployment", "web", "--revision", "1")
    assert yaml.safe_load(out)["spec"]["image"] == V1

    code, _, err = await persys(home, "rollout", "undo", "deployment", "web", "--to-revision", "9")
    assert code == 1 and "revision 9 is not in deployment/web's history (revisions: 1, 2)" in err
    code, out, _ = await persys(home, "rollout", "undo", "deployment", "web")
    assert (code, out.strip()) == (0, "deployment/web rolled back to revision 1")
    back = await wait_rolled_out(client, "web", 4, V1)
    assert [(r["revision"], r["template"]["spec"]["image"]) for r in back.status["revisions"]] == [(2, V2), (3, V1)]
    code, out, _ = await persys(home, "rollout", "undo", "deployment", "web", "--to-revision", "3")
    assert out.strip() == "deployment/web skipped rollback (already at revision 3)"


@HOLLOW
async def test_restart_pause_resume(rollout_cluster: RolloutCluster, api: RunningApi) -> None:
    client, home = rollout_cluster.client, api.home
    await client.apply_raw(deployment("app", replicas=2))
    first = await wait_rolled_out(client, "app", 2, V1)
    code, out, _ = await persys(home, "rollout", "restart", "deployment", "app")
    assert (code, out.strip()) == (0, "deployment/app restarted")

    async def restarted() -> object:
        obj = await wait_rolled_out(client, "app", 2, V1)
        return obj if obj.status["templateHash"] != first.status["templateHash"] else None

    await eventually(restarted, timeout=60, what="every replica replaced")
    code, out, _ = await persys(home, "rollout", "pause", "deployment", "app")
    assert (code, out.strip()) == (0, "deployment/app paused")
    await client.patch("Deployment", "app", {"spec": {"template": {"spec": {"image": V2}}, "replicas": 3}})
    paused = await wait_rolled_out(client, "app", 3, V1)  # scaled, on the old template
    assert {c["type"]: c["reason"] for c in paused.status["conditions"]}["Progressing"] == "DeploymentPaused"
    code, out, _ = await persys(home, "rollout", "resume", "deployment", "app")
    assert (code, out.strip()) == (0, "deployment/app resumed")
    await wait_rolled_out(client, "app", 3, V2)


@HOLLOW
async def test_rollout_status_fails_on_deadline_and_on_rollback(rollout_cluster: RolloutCluster,
                                                                api: RunningApi) -> None:
    client, home = rollout_cluster.client, api.home
    spec = {"progressDeadlineSeconds": 2, "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}
    await client.apply_raw(deployment("stuck", replicas=2, **spec))
    await wait_rolled_out(client, "stuck", 2, V1)
    await client.apply_raw(deployment("stuck", replicas=2, image=BROKEN, **spec))
    code, _, err = await persys(home, "rollout", "status", "deployment", "stuck", "--timeout", "60")
    assert code == 1 and 'deployment "stuck" exceeded its progress deadline' in err

    await client.apply_raw(deployment("back", replicas=2, autoRollback=True, **spec))
    await wait_rolled_out(client, "back", 2, V1)
    await client.apply_raw(deployment("back", replicas=2, image=BROKEN, autoRollback=True, **spec))
    code, _, err = await persys(home, "rollout", "status", "deployment", "back", "--timeout", "60")
    assert code == 1 and 'deployment "back" rollout failed and was rolled back' in err
    await wait_rolled_out(client, "back", 2, V1)
    code, out, _ = await persys(home, "rollout", "status", "deployment", "back", "--timeout", "60")
    assert code == 0 and "successfully rolled out" in out  # started after the rollback: it follows that one
