"""``persys logs NAME [-f] [--tail N]``: a workload's container logs, through the API to its agent."""

from __future__ import annotations

import sys
from pathlib import Path

import aiohttp
import click

from persys.cli.session import call, client_options, option
from persys.client import ApiClient
from persys.client.api import API_PREFIX
from persys.errors import Unavailable


@click.command()
@click.argument("name")
@option("-n", "--namespace", default="default", show_default=True)
@option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@option("--tail", type=int, default=100, show_default=True, help="Lines from the end of the log.")
@client_options
@click.pass_context
def logs(ctx: click.Context, name: str, namespace: str, follow: bool, tail: int, server: str | None,
         config_file: Path | None) -> None:
    """Print the logs of workload NAME."""
    path = f"{API_PREFIX}/namespaces/{namespace}/workloads/{name}/log"
    params = {"tailLines": str(tail), **({"follow": "true"} if follow else {})}

    async def run(client: ApiClient) -> None:
        if not follow:
            _, text, _ = await client.request("GET", path, params=params)
            sys.stdout.write(text if isinstance(text, str) else str(text))
            return
        try:
            async for chunk in client.stream("GET", path, params=params):
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
        except aiohttp.ClientPayloadError as e:
            raise Unavailable(f"log stream broke: {e}") from e

    call(ctx, run, server=server, config_file=config_file)
