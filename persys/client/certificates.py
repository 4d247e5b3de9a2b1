"""Waiting for a CertificateSigningRequest: poll it until the csr-signer has signed or denied it.

Both a joining node (with its bootstrap token) and a component renewing its certificate (over mTLS) post a
request to ``/bootstrap/certificatesigningrequests`` and then wait here, with the client they posted it with.
"""

from __future__ import annotations

import asyncio
import time

from persys.client.api import ApiClient
from persys.errors import Forbidden, Unavailable
from persys.security.bootstrap import CSR_PATH

POLL_FIRST = 0.05  # a signer answers in tens of ms; polling costs one GET


async def signed(client: ApiClient, name: str, *, timeout: float, poll_max: float, what: str, hint: str = "") -> str:
    """The certificate of CSR ``name`` once issued; Forbidden with the reason when denied (or failed), Unavailable
    when ``timeout`` seconds pass first. ``what`` names the request in those errors, ``hint`` ends the latter."""
    deadline, delay = time.monotonic() + timeout, POLL_FIRST
    while time.monotonic() < deadline:
        _, found, _ = await client.request("GET", f"{CSR_PATH}/{name}")
        status = found.get("status") or {}
        if status.get("certificate"):
            return str(status["certificate"])
        for cond in status.get("conditions") or []:
            if cond.get("type") in ("Denied", "Failed") and cond.get("status") == "True":
                raise Forbidden(f"{what} {name} was denied ({cond.get('reason')}): {cond.get('message')}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, poll_max)
    raise Unavailable(f"{what} {name} was not signed within {timeout:g}s{hint}")
