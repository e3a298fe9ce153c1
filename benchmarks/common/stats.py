"""A figure over the rounds of a benchmark: its median and spread."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Spread:
    """The median [min-max] of N values."""

    median: float
    min: float
    max: float
    n: int

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict | None) -> Spread | None:
        return None if data is None else cls(data["median"], data["min"], data["max"], data["n"])


def spread(values) -> Spread | None:
    """The spread of VALUES, leaving out the missing ones (None); None when none is left."""
    values = [value for value in values if value is not None]
    if not values:
        return None
    return Spread(statistics.median(values), min(values), max(values), len(values))
