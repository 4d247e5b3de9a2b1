"""``--etcd-ca``, ``--etcd-cert``, ``--etcd-key``: TLS to a secured etcd, for the commands that talk to it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from persys.cli.session import option

if TYPE_CHECKING:  # the CLI starts without grpc; only the commands that talk to etcd load it
    from persys.store.etcd import EtcdTLS

F = TypeVar("F", bound=Callable[..., Any])

_FILE = click.Path(dir_okay=False, exists=True, readable=True, path_type=Path)


def etcd_tls_options(f: F) -> F:
    """The three flags (also ``PERSYS_ETCD_CA`` …); a command reads them with ``etcd_tls(**kwargs)``."""
    f = option("--etcd-key", type=_FILE, default=None, help="This client's private key for etcd.")(f)
    f = option("--etcd-cert", type=_FILE, default=None,
               help="This client's certificate for etcd (etcd's --client-cert-auth asks for one).")(f)
    return option("--etcd-ca", type=_FILE, default=None,
                  help="CA of etcd's serving certificates; any --etcd-* flag or an https:// endpoint means TLS.")(f)


def etcd_tls(etcd_ca: Path | None, etcd_cert: Path | None, etcd_key: Path | None) -> EtcdTLS | None:
    """The flags as an ``EtcdTLS`` (None: no flag given); a certificate without its key is a usage error."""
    if (etcd_cert is None) != (etcd_key is None):
        missing = "--etcd-key" if etcd_key is None else "--etcd-cert"
        raise click.UsageError(f"{missing} is required with {'--etcd-cert' if etcd_key is None else '--etcd-key'}")
    if etcd_ca is None and etcd_cert is None:
        return None
    from persys.store.etcd import EtcdTLS

    return EtcdTLS(etcd_ca, etcd_cert, etcd_key)
