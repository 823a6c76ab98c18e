"""A server's Prometheus page, as a scraper reads it: fetched over HTTP, read with
prometheus_client's own parser, and a metric's samples by their labels."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.web.client import Agent, readBody


async def fetch_metrics(port: int) -> str:
    """The text of `GET /metrics` on the operations port `port` of 127.0.0.1."""
    response = await Agent(reactor).request(b"GET", f"http://127.0.0.1:{port}/metrics".encode())
    return (await readBody(response)).decode()


def samples(text: str, name: str, *labels: str) -> dict[Any, float]:
    """The values of the samples named `name` (a counter's with its `_total`), keyed by
    their `labels`' values: the value itself for one label, a tuple for more."""
    found: dict[Any, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                key = tuple(sample.labels[label] for label in labels)
                found[key[0] if len(key) == 1 else key] = sample.value
    return found
