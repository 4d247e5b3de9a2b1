"""The operator's handlers as ``persys.runtime.Controller`` s: one level-triggered loop, not a second framework.

Each ``@op.reconcile`` / ``@op.finalize`` pair of a kind becomes one ``ReconcileController`` and
each ``@op.timer`` a ``TimerController``; the runtime gives them their informers, work queue,
workers, back-off and metrics, and runs them only while the operator holds its Lease.
Here lives what the decorators promise on top:

- A reconcile handler's returned mapping is merged into the object's status, with a
  ``Reconciled`` condition, and written (compare-and-swap) only when that changes the status.
- Errors: ``TemporaryError`` looks again after its delay; ``PermanentError`` records a Warning
  Event and ``Reconciled=False`` and waits for the spec to change (a new generation); any other
  exception does the same and is retried with the queue's back-off. ``NotLeader`` ends the term.
- With a finalize handler, the SDK adds the finalizer ``persys.dev/operator-<name>`` to every
  object; once the object is being deleted it calls the handler and removes the finalizer when
  the handler returns (or raised ``PermanentError``: that is recorded, and deletion proceeds).
- The process's own writes do not enqueue the object again (``written``): what it wrote is what
  it decided, so a status write after a failure cannot undo the failure's back-off either.
- Children (``ctx.ensure``) enqueue their owner when they change (``owners.owner_keys``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from persys.errors import Invalid, NotLeader, PersysError
from persys.operator.context import Context, Host
from persys.operator.errors import PermanentError, TemporaryError
from persys.operator.events import WARNING
from persys.operator.owners import OWNER_INDEX, controller_uid, owner_keys
from persys.resources.model import ObjectKey, Resource, now_iso
from persys.resources.selector import Selector
from persys.runtime.controller import Controller, Result, Watch
from persys.runtime.expectations import fresher
from persys.runtime.informer import DELETED, Informer

if TYPE_CHECKING:
    from persys.runtime.manager import Manager

Handler = Callable[[Resource, Context], Awaitable[Any]]
RECONCILED = "Reconciled"
OK, TEMPORARY, PERMANENT = "ok", "temporary", "permanent"  # how a handler call ended


def finalizer_name(operator: str) -> str:
    """The finalizer an operator guards its objects with (``persys.dev/``: kept when a manifest is re-applied)."""
    return f"persys.dev/operator-{operator}"


def with_condition(status: Mapping[str, Any], type_: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
    """``status`` with condition ``type_`` set; its transition time moves only when its truth does."""
    value = "True" if ok else "False"
    conditions = [dict(c) for c in status.get("conditions") or []]
    old = next((c for c in conditions if c.get("type") == type_), None)
    since = old.get("lastTransitionTime") if old and old.get("status") == value else None
    new = {"type": type_, "status": value, "reason": reason, "message": message[:1024],
           "lastTransitionTime": since or now_iso()}
    if old is None:
        conditions.append(new)
    else:
        conditions[conditions.index(old)] = new
    return {**status, "conditions": conditions}


def _content(obj: Resource) -> dict[str, Any]:
    """An object without its resourceVersion: what a write decides."""
    data = obj.to_dict(copy=False)
    data["metadata"].pop("resourceVersion", None)
    return data


class HandlerController(Controller):
    """A controller calling one user handler per key, with the SDK's error policy and status writes."""

    condition: str | None = None  # the status condition its outcomes are written to

    def __init__(self, host: Host, kind: str, name: str, *, owns: Sequence[str] = (), selector: str = "",
                 workers: int = 4, resync: float | None = None) -> None:
        self.name = name
        super().__init__()
        self.host = host
        self.kind = host.registry.get(kind).kind
        self.selector = Selector(selector)
        self.owns = [host.registry.get(k).kind for k in owns]
        self.workers = workers
        self.resync_period = resync
        self._gave_up: dict[ObjectKey, int] = {}  # key → the generation a PermanentError stopped at

    def attach(self, host: object) -> None:
        """Bind to the runner: a Controller reads only ``informer()``, ``informers()`` and ``clock`` from it."""
        self.bind(cast("Manager", host))

    # -- wiring: own writes are not news; children enqueue their owner --

    def watches(self) -> list[Watch]:
        return [Watch(kind, self.owner_keys, indexes={OWNER_INDEX: controller_uid}) for kind in self.owns]

    def owner_keys(self, event_type: str, obj: Resource, old: Resource | None) -> list[ObjectKey]:
        if self._own_write(event_type, obj):
            return []
        return owner_keys(self.host.registry, self.kind, (obj, old))

    def connect_owned(self, informer: Informer) -> None:
        """Watch a child kind learnt in the middle of a term (``watches()`` names it from the next term on)."""
        def enqueue(event_type: str, obj: Resource, old: Resource | None) -> None:
            for key in self.owner_keys(event_type, obj, old):
                self.queue.add(key)
        informer.add_handler(enqueue, owner=self)

    def enqueue_handler(self, event_type: str, obj: Resource, old: Resource | None) -> None:
        if not self._own_write(event_type, obj):
            self.queue.add(obj.key)

    def _own_write(self, event_type: str, obj: Resource) -> bool:
        """Whether ``obj`` is what this process wrote: the answer to its write may come after the watch event."""
        mine = self.host.written.get(obj.key)
        self.host.written.observe(obj, deleted=event_type == DELETED)
        return event_type != DELETED and mine is not None and _content(mine) == _content(obj)

    async def write(self, intended: Resource, call: Awaitable[Resource]) -> Resource:
        """Run ``call``, the write that makes the object ``intended``, remembering both (see ``_own_write``)."""
        self.host.written.expect(intended.key, intended)  # in flight: no revision yet
        try:
            written = await call
        except BaseException:
            self.host.written.forget(intended.key)
            raise
        self.host.written.expect(written.key, written, written.resource_version)
        return written

    def setup(self) -> None:
        self._gave_up.clear()

    def current(self, key: ObjectKey) -> Resource | None:
        """The object as this process last saw or wrote it."""
        return fresher(self.cache.get(key), self.host.written.get(key))

    def selected(self, obj: Resource) -> bool:
        """Whether the handler is for ``obj`` (its labels match the handler's selector)."""
        return self.selector.matches(obj.metadata.labels)

    # -- calling the handler --

    async def call(self, handler: Handler, obj: Resource, ctx: Context) -> tuple[str, Any]:
        """Run ``handler``: (OK, its value), (TEMPORARY or PERMANENT, None), each failure reported on the object.

        Any other exception is reported too, and raised for ``Controller.process`` to log and retry.
        """
        try:
            return OK, await handler(obj, ctx)
        except NotLeader:
            raise
        except TemporaryError as e:
            ctx.requeue_after(e.delay)
            await self.report(obj, "TemporaryError", str(e))
            return TEMPORARY, None
        except PermanentError as e:
            self._gave_up[obj.key] = obj.metadata.generation
            await self.report(obj, "PermanentError", str(e), event=True)
            self.log.error("handler failed for good", key=str(obj.key), error=str(e))
            return PERMANENT, None
        except Exception as e:  # retried by the queue's back-off (Controller.process logs it)
            await self.report(obj, "HandlerError", f"{type(e).__name__}: {e}", event=True)
            raise

    def given_up(self, obj: Resource) -> bool:
        """Whether a PermanentError stopped this object at its current generation."""
        stopped = self._gave_up.get(obj.key)
        if stopped is not None and stopped != obj.metadata.generation:
            del self._gave_up[obj.key]
            return False
        return stopped is not None

    async def report(self, obj: Resource, reason: str, message: str, *, event: bool = False) -> None:
        """Show a failure on the object: with ``event`` a Warning Event; the condition, if the controller has one."""
        if event:
            await self.host.recorder.record(obj, WARNING, reason, message)
        if self.condition is None:
            return
        try:
            await self.write_status(obj, None, (False, reason, message))
        except NotLeader:
            raise
        except PersysError as e:
            self.log.warning("could not write the failure to status", key=str(obj.key), error=e.message)

    async def write_status(self, obj: Resource, changes: Mapping[str, Any] | None,
                           condition: tuple[bool, str, str] | None) -> Resource:
        """Merge ``changes`` (and the controller's condition) into status; write only when that changes it."""
        kind = self.host.registry.get(obj.kind)
        if not kind.status_subresource:
            return obj
        status = {**obj.status, **(changes or {})}
        if condition is not None and self.condition is not None:
            status = with_condition(status, self.condition, *condition)
        if status == obj.status:
            return obj
        intended = obj.copy()
        intended.status = status
        return await self.write(intended, self.host.client.update_status(
            kind.kind, obj.metadata.name, status, namespace=obj.metadata.namespace,
            resource_version=obj.metadata.resourceVersion))


class ReconcileController(HandlerController):
    """``@op.reconcile`` and ``@op.finalize`` of one kind."""

    condition = RECONCILED

    def __init__(self, host: Host, kind: str, name: str, *, reconcile: Handler | None, finalize: Handler | None,
                 **options: Any) -> None:
        super().__init__(host, kind, name, **options)
        self.reconcile_handler, self.finalize_handler = reconcile, finalize
        self.finalizer = finalizer_name(host.name)

    async def reconcile(self, key: ObjectKey) -> Result:
        obj = self.current(key)
        if obj is None:
            self._gave_up.pop(key, None)
            return Result()
        if obj.metadata.deletionTimestamp:
            return await self._finalize(obj)  # also for an object no longer selected: the finalizer is ours
        if not self.selected(obj) or self.given_up(obj):
            return Result()
        if self.finalize_handler is not None and self.finalizer not in obj.metadata.finalizers:
            obj = await self._set_finalizers(obj, [*obj.metadata.finalizers, self.finalizer])
        if self.reconcile_handler is None:
            return Result()
        ctx = Context(self.host, obj)
        outcome, value = await self.call(self.reconcile_handler, obj, ctx)
        if outcome == OK:
            changes = value if isinstance(value, Mapping) else None
            try:
                await self.write_status(obj, changes, (True, RECONCILED, ""))
            except Invalid as e:  # the handler's status does not fit the kind's schema: its author must fix it
                self._gave_up[key] = obj.metadata.generation
                await self.host.recorder.record(obj, WARNING, "InvalidStatus", e.message)
        return Result(requeue_after=ctx.requeue)

    async def _finalize(self, obj: Resource) -> Result:
        if self.finalizer not in obj.metadata.finalizers:
            return Result()
        ctx = Context(self.host, obj)
        if self.finalize_handler is not None:
            outcome, _ = await self.call(self.finalize_handler, obj, ctx)
            if outcome == TEMPORARY:
                return Result(requeue_after=ctx.requeue)
        await self._set_finalizers(obj, [f for f in obj.metadata.finalizers if f != self.finalizer])
        return Result()

    async def _set_finalizers(self, obj: Resource, finalizers: list[str]) -> Resource:
        """A compare-and-swap merge patch of the finalizers (a stale version is a Conflict, retried)."""
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": obj.metadata.resourceVersion}}
        intended = obj.copy()
        intended.metadata.finalizers = list(finalizers)
        return await self.write(intended, self.host.client.patch(obj.kind, obj.metadata.name, patch,
                                                                 namespace=obj.metadata.namespace))


class TimerController(HandlerController):
    """``@op.timer``: the handler runs for each object every ``every`` seconds, first when it is seen."""

    def __init__(self, host: Host, kind: str, name: str, *, handler: Handler, every: float, **options: Any) -> None:
        super().__init__(host, kind, name, **options)
        self.handler, self.every = handler, every
        self._last: dict[ObjectKey, float] = {}  # when the handler last ran for a key
        self._wake: dict[ObjectKey, float] = {}  # when a delayed look is already queued for

    def setup(self) -> None:
        super().setup()
        self._last.clear()
        self._wake.clear()

    async def reconcile(self, key: ObjectKey) -> Result:
        obj = self.current(key)
        if obj is None or obj.metadata.deletionTimestamp or not self.selected(obj):
            self._last.pop(key, None)
            self._wake.pop(key, None)
            return Result()
        now = self.clock.now()
        due = self._last.get(key, now - self.every) + self.every
        if now < due:  # an event between ticks: the next tick is queued already, or queue it
            if self._wake.get(key, due + 1) <= due:
                return Result()
            self._wake[key] = due
            return Result(requeue_after=due - now)
        if self.given_up(obj):
            return Result()
        self._last[key], self._wake[key] = now, now + self.every
        ctx = Context(self.host, obj)
        try:
            outcome, value = await self.call(self.handler, obj, ctx)
        except Exception:
            del self._last[key]  # the queue's back-off decides the retry, not the tick
            raise
        if outcome == OK and isinstance(value, Mapping):
            await self.write_status(obj, value, None)
        if outcome == TEMPORARY and ctx.requeue is not None:
            del self._last[key]  # due again when the delay is over, not at the next tick
            self._wake[key] = now + ctx.requeue
            return Result(requeue_after=ctx.requeue)
        return Result(requeue_after=self.every)
