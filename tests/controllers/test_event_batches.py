"""The EventRecorder's group commit against a real etcd: Events recorded together are created in one
transaction (one revision), an Event that exists already is bumped, never duplicated, and an idle recorder
writes at once."""

from __future__ import annotations

import asyncio

import pytest

from persys.controllers.events import NORMAL, EventRecorder, event_name, events_for
from persys.errors import NotLeader
from persys.resources import REGISTRY, Resource
from persys.store import Etcd, ObjectStore
from persys.store.objects import Fence


def workload(name: str) -> Resource:
    obj = REGISTRY.parse({"kind": "Workload", "metadata": {"name": name, "namespace": "batches"},
                          "spec": {"image": "persys/busybox:local"}})
    obj.metadata.uid = f"uid-{name}"
    return obj


async def test_events_recorded_together_take_a_few_revisions_not_one_each(store: ObjectStore, etcd: Etcd) -> None:
    recorder = EventRecorder(store, "test")
    objects = [workload(f"w{i}") for i in range(60)]
    before = await etcd.revision()
    await asyncio.gather(*(recorder.record(o, NORMAL, "Scheduled", "assigned") for o in objects))
    revisions = await etcd.revision() - before
    assert revisions <= 3, revisions  # the first alone, then the rest in one or two batches (and a lease)
    for obj in objects:
        (event,) = await events_for(store, obj, "Scheduled")
        assert event.spec["count"] == 1 and event.spec["involvedObject"]["uid"] == obj.metadata.uid


async def test_recorders_of_several_controllers_share_one_batch_and_keep_their_sources(
        store: ObjectStore, etcd: Etcd) -> None:
    scheduler, status = EventRecorder(store, "scheduler"), EventRecorder(store, "status")
    objects = [workload(f"s{i}") for i in range(30)]
    await scheduler.record(workload("warm"), NORMAL, "Scheduled", "assigned")  # the shared lease exists now
    before = await etcd.revision()
    await asyncio.gather(*(recorder.record(o, NORMAL, reason, reason.lower())
                           for o in objects for recorder, reason in ((scheduler, "Scheduled"), (status, "Started"))))
    revisions = await etcd.revision() - before
    assert revisions == 1, revisions  # one transaction for both recorders (one each before they shared)
    for obj in objects:
        (scheduled,) = await events_for(store, obj, "Scheduled")
        (started,) = await events_for(store, obj, "Started")
        assert (scheduled.spec["source"], started.spec["source"]) == ("scheduler", "status")


async def test_a_batch_holding_an_event_that_exists_bumps_it_and_creates_the_others(store: ObjectStore) -> None:
    first, fresh = EventRecorder(store, "test"), EventRecorder(store, "test")  # fresh: does not know it exists
    known = workload("known")
    await first.record(known, NORMAL, "Started", "started")
    others = [workload(f"o{i}") for i in range(5)]
    await asyncio.gather(*(fresh.record(o, NORMAL, "Started", "started") for o in [*others, known, known]))
    (event,) = await events_for(store, known, "Started")
    assert event.spec["count"] == 3  # once before, twice in the batches (one name per transaction)
    for obj in others:
        assert [e.spec["count"] for e in await events_for(store, obj, "Started")] == [1]


async def test_an_idle_recorder_writes_at_once_and_a_deposed_leader_hears_so(store: ObjectStore, etcd: Etcd) -> None:
    recorder = EventRecorder(store, "test")
    obj = workload("alone")
    before = await etcd.revision()
    await recorder.record(obj, NORMAL, "Created", "created")
    assert [e.metadata.name for e in await events_for(store, obj)] == [event_name(obj, "Created", "created")]
    assert await etcd.revision() - before <= 2  # the Event (and its lease)
    gone = Fence("/persys/leader/nobody", 12345)
    with pytest.raises(NotLeader):
        await asyncio.gather(*(recorder.record(workload(f"f{i}"), NORMAL, "Created", "x", fence=gone)
                               for i in range(3)))
