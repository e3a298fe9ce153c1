"""Allocator configs, as the config vars a user sets, and the sizes of a run."""

from __future__ import annotations

from dataclasses import dataclass

from common.configs import (ARENA2, BASELINE, GLIBC, JEMALLOC, JEMALLOC_STOCK, LIBRARY, Config,
                            candidate as _candidate)

__all__ = ["BASELINE", "CONFIGS", "Config", "DYNO_SIZES", "LIBRARY", "SIZES", "Size", "candidate"]


def candidate(malloc_conf: str) -> Config:
    """The buildpack's default with MALLOC_CONF on top: each key overrides its compiled-in namesake."""
    return _candidate(f"jemalloc+{malloc_conf}", malloc_conf, "default",
                      f"JEMALLOC_ENABLED=true and MALLOC_CONF={malloc_conf} on the default build")


MAIN = [GLIBC, ARENA2, JEMALLOC_STOCK, JEMALLOC]
# What other buildpacks and guides ship, each on top of the buildpack's default.
CANDIDATES = [candidate(conf) for conf in
              ("thp:never", "muzzy_decay_ms:0", "narenas:1", "tcache_max:1024", "dirty_decay_ms:500")]
CONFIGS = {config.name: config for config in MAIN + CANDIDATES}


@dataclass(frozen=True)
class Size:
    load_seconds: int
    idle_seconds: int
    repetitions: int
    # Dynos running at once: the configs of one app side by side, so that every config of a
    # round shares the machine's conditions.
    concurrency: int
    # Jobs or requests per second: (worker apps, web app).
    rates: tuple[float, float]
    configs: tuple[str, ...] = tuple(config.name for config in MAIN)
    # Alternations of the fork+exec measurement (two bash loops of 500 commands each) and of the
    # fork-without-exec one (a child's work after fork, with and without the restart, per language).
    fork_exec_rounds: int = 11


SIZES = {
    # CI: every app and figure, a minute each; not for conclusions.
    "smoke": Size(45, 10, 1, 8, (1.0, 3.0), ("glibc", "jemalloc"), fork_exec_rounds=3),
    "default": Size(300, 60, 2, 4, (1.5, 4.0)),
    # The README's figures.
    "readme": Size(600, 60, 2, 4, (1.5, 4.0)),
    "long": Size(1800, 120, 2, 4, (1.5, 4.0)),
}

# Heroku's dyno sizes (MiB): standard-1X, standard-2X, performance-M.
DYNO_SIZES = {"standard-1x": 512, "standard-2x": 1024, "performance-m": 2560}
