"""Allocator configs, as the config vars a user sets, and the sizes of a run."""

from __future__ import annotations

from dataclasses import dataclass

from common.configs import (ARENA2, BASELINE, GLIBC, JEMALLOC, JEMALLOC_NO_FORK_HELPER, JEMALLOC_STOCK, LIBRARY,
                            PEER_BUILDPACK, PYMALLOC_MIMALLOC, STACK_LIBJEMALLOC2, Config, candidate as _candidate)

__all__ = ["BASELINE", "CONFIGS", "Config", "DEFAULT_VERSION", "DYNO_SIZES", "FIT_CONFIGS", "FIT_WORKERS", "LIBRARY", "SIZES", "Size",
           "candidate"]


def candidate(malloc_conf: str) -> Config:
    """The buildpack's default with MALLOC_CONF on top: each key overrides its compiled-in namesake."""
    return _candidate(f"jemalloc+{malloc_conf}", malloc_conf, "default",
                      f"JEMALLOC_ENABLED=true and MALLOC_CONF={malloc_conf} on the default build")


# The jemalloc a user gets without JEMALLOC_VERSION (lib/versions.sh's newest), from its fixture.
DEFAULT_VERSION = "5.3.1"

MAIN = [GLIBC, ARENA2, JEMALLOC_STOCK, JEMALLOC]
# What a user would pick instead of this buildpack, and the default without its fork helper
# (beside the peer buildpack's settings, what the helper buys).
PEERS = [PEER_BUILDPACK, STACK_LIBJEMALLOC2, PYMALLOC_MIMALLOC, JEMALLOC_NO_FORK_HELPER]
# What other buildpacks and guides ship, each on top of the buildpack's default.
CANDIDATES = [candidate(conf) for conf in
              ("thp:never", "muzzy_decay_ms:0", "narenas:1", "tcache_max:1024", "dirty_decay_ms:500")]
CONFIGS = {config.name: config for config in MAIN + PEERS + CANDIDATES}
# The fit run's: the default against every config a user would pick instead.
FIT_CONFIGS = ("glibc", "arena2", "jemalloc", "jemalloc-no-fork-helper", "peer-buildpack", "stack-libjemalloc2",
               "pymalloc-mimalloc")
# Workers per app of a fit run: what the buildpack's default fits in a 512 MB dyno by the
# heroku-24 `--size readme` run of 2026-11-23 (workers/512 MB of the config jemalloc).
FIT_WORKERS = {"sidekiq": 3, "puma": 8, "celery-prefork": 8, "celery-threads": 4}


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
    # The feeder's job mix: normal, or heavy (benchmarks/load/feeder.py's --load).
    load: str = "normal"
    # Whether the dynos of several apps may share a batch, up to the concurrency (a smoke run's
    # figures are for checking, not comparing). Else a batch holds one app's configs.
    apps_share_batches: bool = False


SIZES = {
    # CI: every app and figure, a minute each; not for conclusions.
    "smoke": Size(45, 10, 1, 8, (1.0, 3.0), ("glibc", "jemalloc"), fork_exec_rounds=3, apps_share_batches=True),
    "default": Size(300, 60, 2, 4, (1.5, 4.0)),
    # The README's figures.
    "readme": Size(600, 60, 2, 4, (1.5, 4.0)),
    "long": Size(1800, 120, 2, 4, (1.5, 4.0)),
    # --fit: one round of 10 minutes, every config of an app side by side. The rates are per the
    # Procfile's workers and grow with the workers run (see runner.load_for).
    "fit": Size(600, 60, 1, 8, (1.5, 4.0), FIT_CONFIGS),
}

# Heroku's dyno sizes (MiB): standard-1X, standard-2X, performance-M.
DYNO_SIZES = {"standard-1x": 512, "standard-2x": 1024, "performance-m": 2560}
