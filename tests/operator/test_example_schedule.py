"""End to end: the Schedule example operator on a whole cluster (real etcd, dockerd).

Apply the definition and a Schedule, wait until jobs run and only the last ones are kept, change
the command, wait for a job that runs it, delete the Schedule: its jobs go with it."""

from __future__ import annotations

from pathlib import Path

from persys.client import ApiClient
from persys.operator.loading import load_operator
from persys.resources import Resource
from tests.operator.upcluster import EXAMPLES, UpCluster, up_cluster
from tests.support.eventually import eventually

HERE = EXAMPLES / "schedule"


async def jobs(client: ApiClient) -> list[Resource]:
    items, _ = await client.list("Workload")
    return sorted((w for w in items if w.metadata.labels.get("batch.example.com/schedule") == "ticker"),
                  key=lambda w: w.metadata.name)


async def test_schedule_end_to_end(tmp_path: Path) -> None:
    async with up_cluster(tmp_path) as cluster:
        await cluster.apply_file(HERE / "definition.yaml")
        async with cluster.operator(load_operator(str(HERE / "schedule.py"))):
            await converge(cluster)


async def converge(cluster: UpCluster) -> None:
    admin, seen = cluster.admin, set[str]()

    async def kept_after(count: int) -> list[Resource] | None:
        current = await jobs(admin)
        seen.update(j.metadata.name for j in current)
        schedule = await admin.get("Schedule", "ticker")
        return current if len(seen) >= count and len(schedule.status.get("jobs", [])) == 2 else None

    await cluster.apply_file(HERE / "schedule.yaml", every=1, keep=2, command=["sh", "-c", "echo first"])
    await eventually(lambda: kept_after(4), what="four jobs made, two kept", timeout=90)
    await eventually(lambda: _at_most(admin, 2), what="the older jobs deleted", timeout=60)
    finished = await eventually(lambda: _exited(admin), what="a job that ran to its end", timeout=90)
    assert finished.spec["restartPolicy"] == "Never"
    assert finished.metadata.ownerReferences[0].kind == "Schedule"

    await admin.patch("Schedule", "ticker", {"spec": {"command": ["sh", "-c", "echo second"]}})
    await eventually(lambda: _runs(admin, "echo second"), what="a job of the new command", timeout=60)

    await admin.delete("Schedule", "ticker")
    await eventually(lambda: _at_most(admin, 0), what="every job deleted with the Schedule", timeout=60)


async def _at_most(client: ApiClient, count: int) -> bool:
    return len([j for j in await jobs(client) if not j.metadata.deletionTimestamp]) <= count


async def _exited(client: ApiClient) -> Resource | None:
    return next((j for j in await jobs(client) if j.status.get("phase") == "Exited"), None)


async def _runs(client: ApiClient, command: str) -> bool:
    return any(j.spec["command"] == ["sh", "-c", command] for j in await jobs(client))


