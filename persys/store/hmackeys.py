"""The agents' HMAC keyring in etcd, where every signer and (through the API) every agent reads it.

One key, ``HMAC_KEYRING_KEY``, holds the keyring (``persys.security.keyring``). The first API server or
controller manager to start on an etcd writes the keyring of its home there, create-only (a home's
``pki/agent-hmac.secret``); from then on etcd's is the one that counts. A process without a seed
(an API server started without the secret) uses etcd's once there is one. ``StoredKeyring`` is one
process's copy: it re-reads etcd every ``interval`` seconds (a named service, ``hmac-keyring``) and
gives signers the key to sign with now. ``rotate`` adds a new key with compare-and-swap, so two
admins rotating at once both succeed, one after the other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from persys.errors import Conflict, NotFound, PersysError, Unavailable
from persys.observability.logging import get_logger
from persys.security.keyring import HmacKey, Keyring
from persys.store.etcd import Compare, Etcd

HMAC_KEYRING_KEY = "/persys/cluster/hmac-keyring"
REFRESH_SECONDS = 10.0
CAS_ATTEMPTS = 5

log = get_logger("hmac")


class StoredKeyring:
    """This process's copy of etcd's keyring, seeded with ``seed`` (written to etcd when it has none)."""

    name = "hmac-keyring"

    def __init__(self, etcd: Etcd, seed: Keyring | None, *, interval: float = REFRESH_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.etcd = etcd
        self.seed = seed
        self.keyring = seed
        self.interval = interval
        self.clock = clock
        self.tried = asyncio.Event()  # set once ``run`` has read etcd once, whatever came of it
        self._signing = ""

    def signing(self) -> HmacKey:
        """The key to sign with now (logged when it changes); Unavailable before there is a keyring."""
        if self.keyring is None:
            raise Unavailable("this process has no HMAC keyring to sign agent requests with (yet): etcd holds none")
        key = self.keyring.signing(self.clock())
        if key.id != self._signing:
            if self._signing:
                log.info("signing with a new HMAC key", key=key.id, previous=self._signing)
            self._signing = key.id
        return key

    async def refresh(self) -> Keyring:
        """Read etcd's keyring (writing the seed first when there is none) and keep it."""
        keyring, _ = await self._read()
        self.keyring = keyring
        return keyring

    async def _read(self) -> tuple[Keyring, int]:
        """etcd's keyring and its mod revision, after writing the seed there if etcd had none; NotFound when
        neither etcd nor this process has one."""
        found = await self.etcd.get(HMAC_KEYRING_KEY)
        if found is None and self.seed is None:
            raise NotFound(f"etcd holds no agents' HMAC keyring ({HMAC_KEYRING_KEY}) yet: it is written by the first "
                           "persys up, persys server or persys controllers started with pki/agent-hmac.secret")
        if found is None and self.seed is not None:
            await self.etcd.txn_put(HMAC_KEYRING_KEY, self.seed.render().encode(),
                                    [Compare(HMAC_KEYRING_KEY, "create", 0)])
            found = await self.etcd.get(HMAC_KEYRING_KEY)
        if found is None:  # deleted again at once: try again later
            raise Conflict(f"etcd key {HMAC_KEYRING_KEY} was deleted while it was written")
        return Keyring.parse(found.value.decode(), f"etcd key {HMAC_KEYRING_KEY}"), found.mod_revision

    async def run(self) -> None:
        """Re-read the keyring every ``interval`` seconds until cancelled; a failed read keeps the last one."""
        while True:
            try:
                await self.refresh()
            except NotFound:
                pass  # a seedless process waits for etcd's first keyring (signing() says so if asked)
            except PersysError as e:
                log.warning("cannot re-read the HMAC keyring; keeping the last one", error=e.message)
            self.tried.set()
            await asyncio.sleep(self.interval)

    async def rotate(self, overlap: float) -> Keyring:
        """Add a new key that signs ``overlap`` seconds from now (see ``Keyring.rotate``); the stored keyring."""
        for _ in range(CAS_ATTEMPTS):
            current, revision = await self._read()
            rotated = current.rotate(self.clock(), overlap)
            ok, _ = await self.etcd.txn_put(HMAC_KEYRING_KEY, rotated.render().encode(),
                                            [Compare(HMAC_KEYRING_KEY, "mod", revision)])
            if ok:
                self.keyring = rotated
                log.info("HMAC key added", key=rotated.keys[-1].id, overlap_seconds=overlap)
                return rotated
        raise Conflict(f"the HMAC keyring changed {CAS_ATTEMPTS} times while rotating it; try again")
