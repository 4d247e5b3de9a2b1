"""CLI tests: a PKI from ``persys pki init`` and an API server per test (see support.cluster)."""

from tests.support.cluster import api, pki_home  # noqa: F401
