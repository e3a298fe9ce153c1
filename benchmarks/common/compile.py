"""The benchmark app compiled with this buildpack, from the offline jemalloc fixtures."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from harness.app import App, Build
from harness.images import buildpack_image
from harness.paths import source_config
from harness.sources import SourceServer

from .configs import BUILDS
from .errors import BenchmarkError


@contextmanager
def fixture_config(app: App, version: str) -> Iterator[dict]:
    """The config vars that build jemalloc VERSION from its offline fixture, served while in the block.

    Dockerfile.test is built first, outside any timing: on Heroku the buildpack is simply there."""
    buildpack_image(app.stack_images)
    with SourceServer() as server:
        yield source_config(server, version)


def timed_compile(app: App, config: dict, build: str, what: str) -> tuple[Build, float]:
    """The app compiled with CONFIG for BUILD (a key of configs.BUILDS), and the seconds it took."""
    started = time.monotonic()
    compiled = app.compile({**config, **BUILDS[build]})
    seconds = time.monotonic() - started
    if not compiled.succeeded:
        raise BenchmarkError(f"the {what} failed (exit {compiled.returncode}):\n{compiled.output[-3000:]}")
    return compiled, seconds
