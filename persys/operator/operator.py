"""``Operator``: the decorator API an operator's author writes against.

```python
op = Operator("backup-operator")

@op.reconcile("backup.example.com/v1", "Backup")
async def reconcile(backup, ctx):
    await ctx.ensure(workload_for(backup))   # create or update, owner reference set, drift undone
    return {"phase": "Ready"}                # merged into status, written only when it changes

@op.finalize("backup.example.com/v1", "Backup")
async def cleanup(backup, ctx): ...

@op.timer("persys.dev/v1", "Workload", every=30)
async def tick(workload, ctx): ...
```

An ``Operator`` only collects handlers: it does no I/O and knows no cluster, so a module that
defines one can be imported anywhere (tests, ``persys operator run``). The runner
(``persys.operator.runner``) turns the collection into controllers (``handlers``) and runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from persys.operator.context import Host
from persys.operator.handlers import Handler, HandlerController, ReconcileController, TimerController
from persys.resources.names import check_dns1123


@dataclass
class _Kind:
    """The handlers of one kind (those objects of it whose labels match ``selector``)."""

    api_version: str
    kind: str
    selector: str | None = None  # set by the first reconcile or finalize handler
    reconcile: Handler | None = None
    finalize: Handler | None = None
    owns: list[str] = field(default_factory=list)
    timers: list[tuple[Handler, float, str]] = field(default_factory=list)


WORKERS = 16
"""Handler calls in flight per kind by default: a handler mostly waits on the API, so a few workers
would leave the operator idle (bench/operator.py: 1,000 Websites Ready at 98/s with 4, 121/s with 16)."""


class Operator:
    """A named set of handlers; ``name`` names its Lease, its finalizer, its Events' source and its logs."""

    def __init__(self, name: str, *, workers: int = WORKERS, resync: float | None = 600.0) -> None:
        if msg := check_dns1123(name):
            raise ValueError(f"operator name {name!r}: {msg}")
        self.name = name
        self.workers = workers
        self.resync = resync
        self._kinds: dict[str, _Kind] = {}

    def _of(self, api_version: str, kind: str, selector: str | None = None) -> _Kind:
        found = self._kinds.setdefault(kind, _Kind(api_version, kind))
        if found.api_version != api_version:
            raise ValueError(f"{kind} is registered as {found.api_version}, not {api_version}")
        if selector is not None and found.selector not in (None, selector):
            raise ValueError(f"the reconcile and finalize handlers of {kind} must share one selector")
        if selector is not None:
            found.selector = selector
        return found

    def reconcile(self, api_version: str, kind: str, *, owns: Sequence[str] = (),
                  selector: str = "") -> Callable[[Handler], Handler]:
        """Register the handler that converges each object of ``kind`` (whose labels match ``selector``).

        ``owns`` names child kinds up front: their caches are then warm before the first reconcile
        (``ctx.ensure`` and ``ctx.owned`` learn other kinds the first time they meet them).
        """
        def register(handler: Handler) -> Handler:
            entry = self._of(api_version, kind, selector)
            if entry.reconcile is not None:
                raise ValueError(f"{kind} already has a reconcile handler ({entry.reconcile.__name__})")
            entry.reconcile = handler
            entry.owns.extend(owns)
            return handler
        return register

    def finalize(self, api_version: str, kind: str, *, selector: str = "") -> Callable[[Handler], Handler]:
        """Register the handler that cleans up before an object of ``kind`` (matching ``selector``) is deleted."""
        def register(handler: Handler) -> Handler:
            entry = self._of(api_version, kind, selector)
            if entry.finalize is not None:
                raise ValueError(f"{kind} already has a finalize handler ({entry.finalize.__name__})")
            entry.finalize = handler
            return handler
        return register

    def timer(self, api_version: str, kind: str, *, every: float, selector: str = "") -> Callable[[Handler], Handler]:
        """Register a handler called for each object of ``kind`` (matching ``selector``) every ``every`` seconds."""
        if not every > 0:
            raise ValueError(f"timer interval must be positive, not {every!r}")

        def register(handler: Handler) -> Handler:
            self._of(api_version, kind).timers.append((handler, float(every), selector))
            return handler
        return register

    def kinds(self) -> list[tuple[str, str]]:
        """(apiVersion, kind) of every kind with handlers, then the child kinds they declare they own."""
        handled = [(entry.api_version, entry.kind) for entry in self._kinds.values()]
        return handled + [("", kind) for entry in self._kinds.values() for kind in entry.owns]

    def controllers(self, host: Host) -> list[HandlerController]:
        """One controller per kind with a reconcile or finalize handler, one per timer."""
        built: list[HandlerController] = []
        options = {"workers": self.workers, "resync": self.resync}
        for entry in self._kinds.values():
            name = f"{self.name}/{entry.kind.lower()}"
            if entry.reconcile is not None or entry.finalize is not None:
                built.append(ReconcileController(host, entry.kind, name, reconcile=entry.reconcile,
                                                 finalize=entry.finalize, owns=entry.owns,
                                                 selector=entry.selector or "", **options))
            for i, (handler, every, selector) in enumerate(entry.timers):
                built.append(TimerController(host, entry.kind, f"{name}/timer-{i}", handler=handler, every=every,
                                             selector=selector, **options))
        return built
