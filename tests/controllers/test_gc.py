"""The garbage collector against a real etcd: background, foreground, orphan, recreated owners, any kind."""

from __future__ import annotations

import asyncio

import pytest
from controller_support import ManagerFactory, NodeFactory, eventually, workload

from persys.controllers.conditions import FINALIZER
from persys.errors import Conflict, NotFound
from persys.resources import REGISTRY, Resource
from persys.resources.definitions import kind_of
from persys.resources.kinds import default_registry
from persys.resources.model import FOREGROUND_DELETION, OwnerReference, Propagation
from persys.runtime import Manager
from persys.store import ObjectStore
from tests.support.backup import backup, definition

HOLD = "example.com/hold"  # a finalizer of nobody's: keeps an object being deleted until the test lets go


def owned_by(*owners: Resource, block: bool = False) -> list[OwnerReference]:
    return [OwnerReference(o.apiVersion, o.kind, o.metadata.name, o.metadata.uid, blockOwnerDeletion=block)
            for o in owners]


async def child(store: ObjectStore, name: str, *owners: Resource, block: bool = False,
                finalizers: tuple[str, ...] = ()) -> Resource:
    obj = workload(name)
    obj.metadata.ownerReferences = owned_by(*owners, block=block)
    obj.metadata.finalizers = list(finalizers)
    return await store.create(obj)


async def secret(store: ObjectStore, name: str, *owners: Resource) -> Resource:
    obj = REGISTRY.parse({"kind": "Secret", "metadata": {"name": name}, "data": {"k": "v"}})
    obj.metadata.ownerReferences = owned_by(*owners)
    return await store.create(obj)


async def node(store: ObjectStore, name: str) -> Resource:
    return await store.create(REGISTRY.parse({"kind": "Node", "metadata": {"name": name}, "spec": {}}))


async def find(store: ObjectStore, obj: Resource) -> Resource | None:
    """``obj`` as stored now, or None when it is gone (or another object holds its name)."""
    try:
        found = await store.get(obj.kind, obj.metadata.namespace, obj.metadata.name)
    except NotFound:
        return None
    return found if found.metadata.uid == obj.metadata.uid else None


async def gone(store: ObjectStore, *objs: Resource) -> bool:
    return all([await find(store, o) is None for o in objs])


async def gc(controllers: ManagerFactory) -> Manager:
    manager = await controllers(controllers=["gc"])
    await eventually(lambda: manager.is_leader, what="gc leading")
    return manager


async def delete(store: ObjectStore, obj: Resource, propagation: Propagation | None = None) -> None:
    """Delete as a user would: again when a controller wrote the object in between (409)."""
    for _ in range(20):
        try:
            await store.delete(obj.kind, obj.metadata.namespace, obj.metadata.name, propagation=propagation)
            return
        except Conflict:
            await asyncio.sleep(0.05)
    raise AssertionError("delete kept conflicting")


async def test_background_deletes_dependents_down_the_chain(store: ObjectStore, controllers: ManagerFactory) -> None:
    await gc(controllers)
    parent = await store.create(workload("parent"))
    kid = await child(store, "kid", parent)
    grandkid = await child(store, "grandkid", kid)
    await delete(store, parent, Propagation.BACKGROUND)
    assert await find(store, parent) is None  # the owner goes at once
    await eventually(lambda: gone(store, kid, grandkid), what="dependents collected")


async def test_foreground_waits_for_blocking_dependents(store: ObjectStore, controllers: ManagerFactory) -> None:
    await gc(controllers)
    parent = await store.create(workload("parent"))
    blocker = await child(store, "blocker", parent, block=True, finalizers=(HOLD,))
    loose = await child(store, "loose", parent)
    await delete(store, parent, Propagation.FOREGROUND)

    async def blocked() -> bool:
        waiting, held = await find(store, parent), await find(store, blocker)
        return waiting is not None and held is not None and bool(held.metadata.deletionTimestamp)

    await eventually(blocked, what="the blocking dependent being deleted")
    await eventually(lambda: gone(store, loose), what="the non-blocking dependent deleted")
    waiting = await find(store, parent)
    assert waiting is not None and waiting.metadata.deletionTimestamp
    assert FOREGROUND_DELETION in waiting.metadata.finalizers

    await store.modify("Workload", "default", "blocker", lambda o: o.metadata.finalizers.remove(HOLD))
    await eventually(lambda: gone(store, blocker, parent), what="the owner gone after its blocking dependent")


async def test_orphan_keeps_dependents_without_the_reference(store: ObjectStore, controllers: ManagerFactory) -> None:
    await gc(controllers)
    parent = await store.create(workload("parent"))
    other = await store.create(workload("other"))
    kid = await child(store, "kid", parent, other)
    sec = await secret(store, "kid-secret", parent)
    await delete(store, parent, Propagation.ORPHAN)
    await eventually(lambda: gone(store, parent), what="the owner gone after releasing its dependents")
    kept, kept_secret = await find(store, kid), await find(store, sec)
    assert kept is not None and kept.metadata.ownerReferences == owned_by(other)
    assert kept_secret is not None and kept_secret.metadata.ownerReferences == []


async def test_owner_recreated_with_a_new_uid_counts_as_gone(store: ObjectStore,
                                                              controllers: ManagerFactory) -> None:
    first = await store.create(workload("parent"))
    orphaned = await child(store, "of-the-first", first)
    await delete(store, first)  # no collector running: nothing happens to the dependent yet
    second = await store.create(workload("parent"))
    kept = await child(store, "of-the-second", second)

    await gc(controllers)  # starts on a cache where "parent" exists, with another uid
    await eventually(lambda: gone(store, orphaned), what="the first owner's dependent collected")
    sentinel = await child(store, "sentinel", first)  # processed after the ones above: a marker
    await eventually(lambda: gone(store, sentinel), what="the marker collected")
    assert await find(store, kept) is not None and await find(store, second) is not None

    await delete(store, second)
    third = await store.create(workload("parent"))  # recreated while the collector runs
    await eventually(lambda: gone(store, kept), what="the second owner's dependent collected")
    assert await find(store, third) is not None


async def test_generic_across_kinds(store: ObjectStore, controllers: ManagerFactory) -> None:
    """Workloads owned by a Workload and a Secret, by a (cluster-scoped) Node; a Secret owned by a Workload."""
    await gc(controllers)
    app = await store.create(workload("app"))
    config = await secret(store, "config")
    n1 = await node(store, "n1")
    both = await child(store, "both", app, config)
    on_node = await child(store, "on-node", n1)
    app_secret = await secret(store, "app-secret", app)

    await delete(store, config)
    released = await eventually(lambda: _without_owner(store, both, config), what="reference to the Secret dropped")
    assert released.metadata.ownerReferences == owned_by(app)

    await delete(store, app)
    await eventually(lambda: gone(store, both, app_secret), what="the Workload's dependents of two kinds collected")
    assert await find(store, on_node) is not None
    await delete(store, n1)
    await eventually(lambda: gone(store, on_node), what="the Node's dependent collected")


async def _without_owner(store: ObjectStore, dependent: Resource, owner: Resource) -> Resource | None:
    found = await find(store, dependent)
    if found is None or any(r.uid == owner.metadata.uid for r in found.metadata.ownerReferences):
        return None
    return found


async def test_foreground_with_all_controllers_removes_containers_first(
        store: ObjectStore, hollow_node: NodeFactory, controllers: ManagerFactory) -> None:
    """On a node, the owner waits for its dependent's container finalizer, then goes through its own."""
    n1 = await hollow_node("n1")
    await controllers()
    parent = await store.create(workload("parent"))
    kid = await child(store, "kid", parent, block=True)
    await eventually(lambda: _running(store, parent), what="parent running")
    await eventually(lambda: _running(store, kid), what="kid running")
    await delete(store, parent, Propagation.FOREGROUND)
    order: list[str] = []

    async def both_gone() -> bool:
        owner, dependent = await find(store, parent), await find(store, kid)  # the owner first: never seen late
        if owner is None and dependent is not None:
            order.append("owner went before its blocking dependent")
        return owner is None and dependent is None

    await eventually(both_gone, what="dependent, then owner, deleted")
    assert order == []
    left = {state.uid for state in await n1.runtime.list()}
    assert parent.metadata.uid not in left and kid.metadata.uid not in left


async def _running(store: ObjectStore, obj: Resource) -> bool:
    found = await find(store, obj)
    return found is not None and found.status.get("containerState") == "running" \
        and FINALIZER in found.metadata.finalizers


async def test_custom_kinds_are_collected_from_the_moment_their_definition_is_stored(
        store: ObjectStore, controllers: ManagerFactory) -> None:
    manager = await gc(controllers)
    followed = lambda: {i.kind for i in manager.informers()}  # noqa: E731
    assert "Backup" not in followed()
    stored = await store.create(REGISTRY.parse(definition()))
    registry = default_registry()
    registry.register(kind_of(stored))
    backups = ObjectStore(store.etcd, registry)  # a client that knows the kind, as an API server would
    owner = await backups.create(registry.parse(backup("nightly")))
    kid = await child(store, "kid", owner)  # owned by a Backup before or after the collector follows the kind
    await eventually(lambda: "Backup" in followed(), what="the collector following Backup")
    await delete(backups, owner)
    await eventually(lambda: gone(store, kid), what="the Backup's dependent collected")

    await store.delete("ResourceDefinition", "", stored.metadata.name)
    await eventually(lambda: "Backup" not in followed(), what="the collector no longer following Backup")
    with pytest.raises(NotFound):
        manager.store.registry.get("Backup")
