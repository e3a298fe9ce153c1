"""Allocator configs, as the config vars a user sets on the app, and the builds they run on."""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.paths import LIBRARY_FILE

MIB = 1024 * 1024
# The slug's jemalloc, as a dyno maps it.
LIBRARY = LIBRARY_FILE
# Every ratio is to this config, measured in the same round.
BASELINE = "glibc"
# The builds of the app a config can run on: the buildpack's default build (its compiled-in
# tuning), and the build with JEMALLOC_TUNING=none (jemalloc's stock settings). Their config vars.
BUILDS = {"default": {}, "stock": {"JEMALLOC_TUNING": "none"}}


@dataclass(frozen=True)
class Config:
    """An allocator setup: the config vars of the dyno, and the build it runs on (a key of BUILDS)."""

    name: str
    env: dict
    jemalloc: bool
    about: str
    build: str = "default"

    @property
    def stock_build(self) -> bool:
        return self.build == "stock"

    @classmethod
    def from_json(cls, name: str, data: dict) -> Config:
        """A config as the benchmarks' JSON records it (env, about, and build or stock_build)."""
        build = data.get("build") or ("stock" if data.get("stock_build") else "default")
        return cls(name, data["env"], data["env"].get("JEMALLOC_ENABLED") == "true", data["about"], build)


def candidate(name: str, malloc_conf: str, build: str, about: str) -> Config:
    """jemalloc with MALLOC_CONF on the BUILD build."""
    return Config(name, {"JEMALLOC_ENABLED": "true", "MALLOC_CONF": malloc_conf}, True, about, build)


def is_malloc_conf(text: str) -> bool:
    """Whether TEXT reads as a MALLOC_CONF: KEY:VALUE[,KEY:VALUE...]."""
    return re.fullmatch(r"[a-z_]+:[^,\s]+(,[a-z_]+:[^,\s]+)*", text) is not None


def names(text: str) -> list[str]:
    """The names of a comma-separated option."""
    return [name.strip() for name in text.split(",") if name.strip()]


GLIBC = Config("glibc", {}, False, "glibc malloc with its defaults (JEMALLOC_ENABLED and MALLOC_ARENA_MAX unset)")
ARENA2 = Config("arena2", {"MALLOC_ARENA_MAX": "2"}, False,
                "glibc malloc with MALLOC_ARENA_MAX=2, what Heroku sets for Ruby apps")
JEMALLOC_STOCK = Config("jemalloc-stock", {"JEMALLOC_ENABLED": "true"}, True,
                        "JEMALLOC_ENABLED=true on a JEMALLOC_TUNING=none build: jemalloc's own defaults", "stock")
JEMALLOC = Config("jemalloc", {"JEMALLOC_ENABLED": "true"}, True,
                  "JEMALLOC_ENABLED=true: the buildpack's default build and settings")
