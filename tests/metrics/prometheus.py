"""Reading a Ray node's Prometheus endpoint in tests: scrape, select, wait for a value."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from tests.waiting import wait_until


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class Scrape:
    def __init__(self, samples: list[Sample]) -> None:
        self.samples = samples

    def select(self, name: str, **labels: str) -> list[Sample]:
        return [
            s
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def total(self, name: str, **labels: str) -> float:
        """The sum over every matching series (every worker's, for a counter)."""
        return sum(s.value for s in self.select(name, **labels))


def scrape(port: int) -> Scrape:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return Scrape(
        [
            Sample(sample.name, dict(sample.labels), float(sample.value))
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]
    )


def wait_for_scrape(
    port: int, condition: Callable[[Scrape], bool], what: str, timeout_s: float = 90.0
) -> Scrape:
    """Scrape until `condition` holds; Ray exports each process's metrics periodically."""
    last = Scrape([])

    def holds() -> bool:
        nonlocal last
        try:
            last = scrape(port)
        except (urllib.error.URLError, ConnectionError):
            last = Scrape([])
        return condition(last)

    try:
        wait_until(holds, timeout_s, what, poll_s=0.25)
    except AssertionError:
        names = sorted({s.name for s in last.samples if "swarm" in s.name})
        raise AssertionError(f"metrics never showed {what}; swarm series seen: {names}") from None
    return last
