"""How an agent follows the rotations of the agents' HMAC keyring: it re-reads it from the API.

The keyring lives in etcd (``persys.store.hmackeys``); an agent, on its own host, asks the API for it
(``GET /bootstrap/node-config`` over mTLS with its node certificate) every ``interval`` seconds. The
verifier uses what it answers at once (a new key is accepted from then on, an expired one refused),
and the agent's keyring file gets it too, so that an agent restarted while the API is away still
accepts the keys in use. A failed read keeps the last keyring: the API being away stops nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from persys.client.api import ApiClient
from persys.errors import Cause, Invalid, PersysError
from persys.observability.logging import get_logger
from persys.security.bootstrap import NODE_CONFIG_PATH
from persys.security.hmac import Verifier
from persys.security.keyring import Keyring, write_keyring

REFRESH_SECONDS = 30.0

log = get_logger("agent")


def node_keyring(config: Any, source: str) -> Keyring:
    """The keyring in a ``NodeConfig`` answer (an API server from before keyrings answers one key)."""
    if isinstance(config, dict) and "hmacKeyring" in config:
        return Keyring.from_dict(config["hmacKeyring"], f"{source} hmacKeyring")
    if isinstance(config, dict) and isinstance(config.get("hmacSecret"), str) and config["hmacSecret"]:
        return Keyring.from_dict({"keys": [{"id": config.get("hmacKeyId"), "secret": config["hmacSecret"]}]}, source)
    raise Invalid(f"{source} did not answer the agents' HMAC keyring", causes=[Cause("hmacKeyring", "missing")])


class KeyringFollower:
    """Re-reads the keyring for ``verifier`` every ``interval`` seconds through ``api()``, saving it to ``file``."""

    def __init__(self, node: str, verifier: Verifier, api: Callable[[], ApiClient], file: Path | None, *,
                 interval: float = REFRESH_SECONDS) -> None:
        self.node = node
        self.verifier = verifier
        self.api = api
        self.file = file
        self.interval = interval

    async def follow(self) -> Keyring:
        """Read the keyring once and use it."""
        client = self.api()
        _, config, _ = await client.request("GET", NODE_CONFIG_PATH)
        keyring = node_keyring(config, f"{client.server}{NODE_CONFIG_PATH}")
        if keyring != self.verifier.keyring:
            log.info("HMAC keyring changed", node=self.node, keys=[k.id for k in keyring.keys])
            self.verifier.keyring = keyring
            if self.file is not None:
                write_keyring(self.file, keyring)
        return keyring

    async def run(self) -> None:
        """Follow the keyring until cancelled."""
        while True:
            try:
                await self.follow()
            except (PersysError, OSError) as e:
                log.warning("cannot re-read the HMAC keyring; keeping the last one", node=self.node,
                            error=getattr(e, "message", str(e)))
            await asyncio.sleep(self.interval)
