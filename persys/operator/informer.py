"""The API as an informer's source: operators list and watch through the API, never etcd.

``persys.runtime.Informer`` does the caching, indexing, relisting and stall watching; this
module only speaks the API's dialect of list + watch to it. A list answers with the
collection's ``resourceVersion``; the watch resumes after it (``?watch=true&resourceVersion=N``)
and delivers BOOKMARKs while nothing changes, which move the informer's revision and prove the
stream alive to its watchdog. A 410 (compacted) comes back from the client as ``Gone``, before
or during the stream, and makes the informer relist; a stream the server closes raises
``Unavailable``, so the informer resumes from its revision after a back-off instead of relisting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from persys.client.api import ApiClient
from persys.errors import Unavailable
from persys.resources.model import Resource
from persys.resources.registry import Registry
from persys.runtime.informer import Informer


@dataclass(frozen=True)
class ApiEvent:
    """A watch line as the informer reads it; ``object`` is None for BOOKMARKs."""

    type: str
    object: Resource | None
    revision: int


class ApiSource:
    """``Source`` over an ``ApiClient``: the identity and the kinds are the client's."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    @property
    def registry(self) -> Registry:
        return self.client.registry

    async def list(self, kind_name: str, namespace: str | None = None) -> tuple[list[Resource], int]:
        items, version = await self.client.list(kind_name, namespace)
        return items, int(version or 0)

    async def watch(self, kind_name: str, namespace: str | None = None, *,
                    revision: int) -> AsyncIterator[ApiEvent]:
        async for item in self.client.watch(kind_name, namespace, resource_version=str(revision)):
            yield ApiEvent(item.type, item.object, int(item.resource_version or revision))
        raise Unavailable(f"the API closed the watch on {kind_name}")


def api_informer(client: ApiClient, kind: str, *, namespace: str | None = None,
                 stall_seconds: float = 300.0, backoff: tuple[float, float] = (0.1, 5.0)) -> Informer:
    """An informer of ``kind`` that lists and watches through ``client``."""
    return Informer(ApiSource(client), kind, namespace=namespace, stall_seconds=stall_seconds, backoff=backoff)
