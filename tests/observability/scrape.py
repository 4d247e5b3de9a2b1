"""Reading a component's ``/metrics`` the way Prometheus does (polling is ``tests.support.eventually``)."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str) -> Samples:
    """Every sample at ``url`` (``http://…/metrics``), parsed by prometheus_client's parser."""
    async with aiohttp.ClientSession() as session, \
            session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
        assert resp.status == 200, f"{url} answered {resp.status}"
        assert resp.content_type == "text/plain", resp.content_type
        text = await resp.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    """The sum of ``metric``'s samples whose labels include ``labels`` (0 when there is none)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == metric and wanted <= have)


def moved(before: Samples, after: Samples, metric: str, /, **labels: str) -> float:
    """How much ``metric`` (with ``labels``) grew between two scrapes."""
    return value(after, metric, **labels) - value(before, metric, **labels)

