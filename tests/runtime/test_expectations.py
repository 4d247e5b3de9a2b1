"""``Expectations``: values counted on until the cache shows them, and ``on_drop`` told of every one that goes."""

from __future__ import annotations

from persys.resources.model import ObjectKey, ObjectMeta, Resource
from persys.runtime.clock import FakeClock
from persys.runtime.expectations import Expectations


def at(name: str, revision: int) -> Resource:
    return Resource(kind="Workload", metadata=ObjectMeta(name=name, namespace="default",
                                                         resourceVersion=str(revision)))


def key(name: str) -> ObjectKey:
    return ObjectKey("Workload", "default", name)


def test_every_way_out_tells_on_drop_once() -> None:
    clock, dropped = FakeClock(), []
    expected: Expectations[str] = Expectations(ttl=10, clock=clock, on_drop=dropped.append)
    for name in ("seen", "failed", "deleted", "replaced", "old", "cleared"):
        expected.expect(key(name), name)
    expected.written(key("seen"), 7)
    expected.observe(at("seen", 6))  # not yet the write's revision
    expected.observe(at("seen", 7))
    expected.forget(key("failed"))
    expected.forget(key("failed"))  # twice: told once
    expected.observe(at("deleted", 1), deleted=True)
    expected.expect(key("replaced"), "replaced again")
    assert dropped == ["seen", "failed", "deleted", "replaced"]
    clock.advance(5)
    expected.expect(key("young"), "young")
    clock.advance(6)
    expected.expire()  # "old" and the others of the first round are 11 s old, "young" 6 s
    assert sorted(dropped[4:]) == ["cleared", "old", "replaced again"]
    expected.clear()
    assert dropped[-1] == "young" and len(expected) == 0


def test_a_running_total_kept_with_on_drop_matches_the_values() -> None:
    total = [0]
    expected: Expectations[int] = Expectations(on_drop=lambda v: total.__setitem__(0, total[0] - v))

    def expect(name: str, value: int) -> None:
        expected.expect(key(name), value)
        total[0] += value

    for i in range(10):
        expect(f"w{i}", i)
    expect("w3", 30)  # replaces 3
    for i in range(0, 10, 2):
        expected.forget(key(f"w{i}"))
    assert total[0] == sum(expected.values()) == 1 + 30 + 5 + 7 + 9
