"""Every jemalloc compile of a test session (a build that said "Building jemalloc", not one
served from the cache), so that a run shows where its compile time went and which builds were
compiled more than once (on purpose, where the compile is the test's subject: a damaged cache
entry rebuilt, a fault in the middle of a build).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass

BUILDING = re.compile(r"^-----> Building jemalloc (\S+) \(cache key ([0-9a-f]+)\)$", re.MULTILINE)


@dataclass(frozen=True)
class Compile:
    platform: str  # "classic" or "cnb"
    stack: str
    version: str
    key: str
    seconds: float
    test: str


RECORDED: list[Compile] = []


def record(platform: str, stack: str, output: str, seconds: float) -> None:
    """Note the compile in a build's OUTPUT, if it compiled (SECONDS: how long the build took)."""
    match = BUILDING.search(output)
    if match:
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]
        RECORDED.append(Compile(platform, stack, match[1], match[2], seconds, test))


def to_json() -> str:
    """The compiles recorded in this process, for another one (a pytest-xdist worker's controller)."""
    return json.dumps([dataclasses.asdict(compiled) for compiled in RECORDED])


def add_json(text: str) -> None:
    """Record the compiles another process recorded (to_json's TEXT)."""
    RECORDED.extend(Compile(**fields) for fields in json.loads(text))


def summary(compiles: list[Compile] | None = None) -> list[str]:
    """Lines for the end of a run: the count and time, then each build compiled more than once."""
    compiles = RECORDED if compiles is None else compiles
    if not compiles:
        return []
    by_build = defaultdict(list)
    for compiled in compiles:
        by_build[(compiled.platform, compiled.stack, compiled.version, compiled.key)].append(compiled)
    lines = [f"{len(compiles)} compiles of {len(by_build)} distinct builds, "
             f"{sum(compiled.seconds for compiled in compiles) / 60:.1f} minutes in all"]
    for (platform, stack, version, key), repeated in sorted(by_build.items()):
        if len(repeated) > 1:
            lines.append(f"  {platform} {stack} {version} (cache key {key}) {len(repeated)} times: "
                         + ", ".join(f"{compiled.test} {compiled.seconds:.0f}s" for compiled in repeated))
    return lines
