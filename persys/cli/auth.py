"""``persys auth can-i VERB KIND``: may I do this? The answer is the server's (an AccessReview).

It prints ``yes`` or ``no`` on the first line and, on the second, the binding (or certificate role)
that decided, or why nothing allows it; the exit code is 0 for yes and 1 for no, as kubectl's.
``--as USER`` (with ``--as-group GROUP``, repeatable) asks for someone else, as the gateway would
present them; only admins may.
"""

from __future__ import annotations

from pathlib import Path

import click

from persys.cli.printing import click_echo
from persys.cli.session import call, client_options, option


@click.group()
def auth() -> None:
    """What you, or someone else, may do."""


@auth.command("can-i")
@click.argument("verb", type=click.Choice(["get", "list", "watch", "create", "update", "patch", "delete"]))
@click.argument("kind")
@option("-n", "--namespace", default="default", show_default=True)
@click.option("-A", "--all-namespaces", is_flag=True, help="Ask about all namespaces at once (list, watch).")
@click.option("--as", "as_user", default="", help="Ask for this user (github:LOGIN, or an identity); admins only.")
@click.option("--as-group", "as_groups", multiple=True,
              help="A group of the --as user (github-org:ORG, github-team:ORG/TEAM); repeatable.")
@client_options
@click.pass_context
def can_i(ctx: click.Context, verb: str, kind: str, namespace: str, all_namespaces: bool, as_user: str,
          as_groups: tuple[str, ...], server: str | None, config_file: Path | None) -> None:
    """Answer yes or no: may VERB be done on KIND objects in the namespace?"""
    answer = call(ctx, lambda client: client.review_access(verb, kind, "" if all_namespaces else namespace,
                                                            user=as_user, groups=as_groups),
                  server=server, config_file=config_file)
    status = answer.get("status") or {}
    allowed = status.get("allowed") is True
    click_echo("yes" if allowed else "no")
    click_echo(str(status.get("reason") or status.get("decidedBy") or ""))
    if not allowed:
        ctx.exit(1)
