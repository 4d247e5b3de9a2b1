"""The cluster's identity in etcd: one id, written once, that every later start must agree with.

``persys pki init`` makes the id (``$PERSYS_HOME/pki/cluster-id``). The first ``persys up`` or
``persys server`` on an etcd writes it under ``CLUSTER_ID_KEY``, create-only, so two racing
starts settle on one. Every start compares: a home whose PKI names another cluster than the
etcd it points at is refused, naming both, because agents stamp the id on every container and
claim only their own cluster's; a second id for one cluster would disown its containers. A home
made before clusters had an id adopts the one in etcd.
"""

from __future__ import annotations

from persys.errors import Conflict
from persys.store.etcd import Compare, Etcd

CLUSTER_ID_KEY = "/persys/cluster/id"


async def claim_cluster_id(etcd: Etcd, local: str) -> str:
    """The cluster's id: etcd's, after writing ``local`` there if etcd had none ("" when neither has one).

    Raises Conflict when etcd already holds another id than ``local``.
    """
    if local:
        await etcd.txn_put(CLUSTER_ID_KEY, local.encode(), [Compare(CLUSTER_ID_KEY, "create", 0)])
    stored = await etcd.get(CLUSTER_ID_KEY)
    cluster = stored.value.decode() if stored is not None else ""
    if local and cluster != local:
        raise Conflict(f"this home's PKI belongs to cluster {local}, but etcd at {etcd.url} holds cluster "
                       f"{cluster}: point it at that cluster's etcd, or use that cluster's home (pki/cluster-id)")
    return cluster
