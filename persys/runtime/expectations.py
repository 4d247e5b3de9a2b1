"""``Expectations``: what a controller wrote (or is about to write) that its cache has not shown yet.

An informer delivers a controller's own write some milliseconds after the write returns, and
maybe after another writer's newer change. A controller that decides from the cache in that
window decides on a world without its last act: the scheduler would give the same room twice,
the reconciler would launch twice. client-go answers with ControllerExpectations and
kube-scheduler with "assume"; this is both, once:

- ``expect(key, value)`` before (or right after) a write records what the controller counts on:
  an assumed binding, the object its write produced.
- ``written(key, revision)`` says which etcd revision carries it; ``observe(obj)`` (from an
  informer handler) drops the expectation once the cache shows that revision or a newer one.
  Revisions are global and monotonic in etcd, so "newer" is exact, whoever wrote.
- An expectation still in flight (no revision yet) is dropped only by ``forget`` (the write
  failed) or by a deletion; one older than ``ttl`` seconds is dropped too, so a lost watch event
  can never pin it forever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from persys.resources.model import ObjectKey, Resource
from persys.runtime.clock import Clock, SystemClock

T = TypeVar("T")


@dataclass
class _Expected(Generic[T]):
    value: T
    revision: int | None
    since: float


class Expectations(Generic[T]):
    """Per-key values a controller counts on until its cache catches up with them."""

    def __init__(self, *, ttl: float = 60.0, clock: Clock | None = None,
                 on_drop: Callable[[T], None] | None = None) -> None:
        """``on_drop(value)`` is told of every value that stops being expected (so that a caller can keep
        running totals of the values instead of summing them at each decision)."""
        self.ttl = ttl
        self.clock = clock or SystemClock()
        self.on_drop = on_drop
        self._items: dict[ObjectKey, _Expected[T]] = {}

    def expect(self, key: ObjectKey, value: T, revision: int | None = None) -> None:
        """Count on ``value`` for ``key`` until the cache shows ``revision`` (None: the write is in flight)."""
        old = self._items.get(key)
        self._items[key] = _Expected(value, revision, self.clock.now())
        if old is not None:
            self._dropped(old)

    def _dropped(self, item: _Expected[T]) -> None:
        if self.on_drop is not None:
            self.on_drop(item.value)

    def written(self, key: ObjectKey, revision: int) -> None:
        """The write behind ``key``'s expectation landed at ``revision``."""
        item = self._items.get(key)
        if item is not None:
            item.revision = revision

    def forget(self, key: ObjectKey) -> None:
        """Drop ``key``'s expectation (its write failed, or it no longer matters)."""
        item = self._items.pop(key, None)
        if item is not None:
            self._dropped(item)

    def observe(self, obj: Resource, deleted: bool = False) -> None:
        """An informer event: drop the expectation the cache now satisfies (or that a delete ends)."""
        item = self._items.get(obj.key)
        if item is None:
            return
        if deleted or (item.revision is not None and obj.resource_version >= item.revision):
            del self._items[obj.key]
            self._dropped(item)

    def get(self, key: ObjectKey) -> T | None:
        """The value still expected for ``key``, or None."""
        item = self._items.get(key)
        if item is None:
            return None
        if self.clock.now() - item.since > self.ttl:
            del self._items[key]
            self._dropped(item)
            return None
        return item.value

    def pending(self, key: ObjectKey) -> bool:
        return self.get(key) is not None

    def values(self) -> Iterator[T]:
        """Every value still expected (expired ones are dropped on the way)."""
        for key in list(self._items):
            value = self.get(key)
            if value is not None:
                yield value

    def expire(self) -> None:
        """Drop every expectation older than ``ttl`` (``get`` and ``values`` drop those they meet)."""
        now = self.clock.now()
        for key in [k for k, item in self._items.items() if now - item.since > self.ttl]:
            self._dropped(self._items.pop(key))

    def clear(self) -> None:
        items, self._items = self._items, {}
        for item in items.values():
            self._dropped(item)

    def __len__(self) -> int:
        return len(self._items)


def fresher(cached: Resource | None, expected: Resource | None) -> Resource | None:
    """The newer of the cached object and the one a controller's own write produced."""
    if expected is None or cached is None:
        return cached  # gone from the cache: a delete is never undone by an expectation
    return expected if expected.resource_version > cached.resource_version else cached
