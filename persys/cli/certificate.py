"""``persys certificate list|approve|deny``: CertificateSigningRequests by hand (admins).

The csr-signer decides the requests that come with a bootstrap token; these commands decide the others
(or overrule a pending one): ``approve`` sets the ``Approved`` condition and the signer then signs it
(its key and subject are still checked), ``deny`` sets ``Denied``. Both compare-and-swap on the CSR's
resourceVersion, so a decision is never written over another one made meanwhile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from persys.cli.printing import RowPrinter, click_echo
from persys.cli.session import call, client_options, option
from persys.client import ApiClient
from persys.errors import Conflict
from persys.resources import Resource, now_iso
from persys.resources.certificates import APPROVED, CERTIFICATE_SIGNING_REQUEST, DENIED, condition_of


@click.group()
def certificate() -> None:
    """Certificate signing requests: list, approve or deny them."""


@certificate.command("list")
@client_options
@click.pass_context
def list_requests(ctx: click.Context, server: str | None, config_file: Path | None) -> None:
    """List CertificateSigningRequests with who asked and their condition."""

    async def run(client: ApiClient) -> list[Resource]:
        return (await client.list(CERTIFICATE_SIGNING_REQUEST.kind, None))[0]

    RowPrinter(CERTIFICATE_SIGNING_REQUEST, False, False).print(call(ctx, run, server=server, config_file=config_file))


def _decide(ctx: click.Context, name: str, type_: str, reason: str, message: str, server: str | None,
            config_file: Path | None) -> None:
    async def run(client: ApiClient) -> None:
        current = await client.get(CERTIFICATE_SIGNING_REQUEST.kind, name, namespace="")
        decided = condition_of(current)
        if decided != "Pending":
            raise Conflict(f"certificatesigningrequest {name} is already {decided}")
        status: dict[str, Any] = dict(current.status)
        status["conditions"] = [*(status.get("conditions") or []), {
            "type": type_, "status": "True", "reason": reason, "message": message, "lastTransitionTime": now_iso()}]
        await client.request("PUT", client.path(CERTIFICATE_SIGNING_REQUEST.kind, None, name, "status"), body={
            "apiVersion": "persys.dev/v1", "kind": CERTIFICATE_SIGNING_REQUEST.kind,
            "metadata": {"name": name, "resourceVersion": current.metadata.resourceVersion}, "status": status})
        click_echo(f"certificatesigningrequest/{name} {type_.lower()}")

    call(ctx, run, server=server, config_file=config_file)


@certificate.command("approve")
@click.argument("name")
@option("--message", default="approved by an admin", show_default=True)
@client_options
@click.pass_context
def approve(ctx: click.Context, name: str, message: str, server: str | None, config_file: Path | None) -> None:
    """Approve a pending request: the csr-signer then signs it."""
    _decide(ctx, name, APPROVED, "ApprovedByAdmin", message, server, config_file)


@certificate.command("deny")
@click.argument("name")
@option("--message", default="denied by an admin", show_default=True)
@client_options
@click.pass_context
def deny(ctx: click.Context, name: str, message: str, server: str | None, config_file: Path | None) -> None:
    """Deny a pending request."""
    _decide(ctx, name, DENIED, "DeniedByAdmin", message, server, config_file)
