"""The synthetic benchmark's allocator configs, its sizes and the workloads' languages."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from common.configs import ARENA2, BASELINE, GLIBC, JEMALLOC, JEMALLOC_STOCK, Config, candidate as _candidate

__all__ = ["BASELINE", "CONFIGS", "Config", "LANGUAGES", "Parameters", "SIZES", "candidate", "expected_options"]


def candidate(name: str, malloc_conf: str) -> Config:
    """A candidate MALLOC_CONF on the JEMALLOC_TUNING=none build: the buildpack's compiled-in
    defaults a MALLOC_CONF would only amend key by key, so a candidate must be the whole configuration."""
    return _candidate(name, malloc_conf, "stock",
                      f"JEMALLOC_ENABLED=true, MALLOC_CONF={malloc_conf}, on the JEMALLOC_TUNING=none build")


CONFIGS = {
    config.name: config
    for config in (
        GLIBC,
        ARENA2,
        JEMALLOC,
        JEMALLOC_STOCK,
        candidate("jemalloc:narenas2+bg+decay1s", "narenas:2,background_thread:true,dirty_decay_ms:1000"),
        candidate("jemalloc:bg+decay1s", "background_thread:true,dirty_decay_ms:1000"),
        candidate("jemalloc:narenas2", "narenas:2"),
    )
}


@dataclass(frozen=True)
class Parameters:
    """What each worker does: its threads and jobs, the rounds, and its idle seconds after the work."""

    threads: int
    jobs: int
    repetitions: int
    idle: float
    seed: int = 1

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Parameters:
        return cls(**data)


# Presets of --size; the options --threads, --jobs, --repetitions and --idle override them.
SIZES = {
    "smoke": Parameters(threads=2, jobs=20, repetitions=1, idle=1.0),
    "default": Parameters(threads=10, jobs=1000, repetitions=3, idle=3.0),
    "long": Parameters(threads=10, jobs=5000, repetitions=5, idle=12.0),
}
LANGUAGES = {
    "python": "python3 workloads/worker.py",
    "ruby": "ruby workloads/worker.rb",
}


def expected_options(compiled_conf: str, config: Config) -> dict:
    """The jemalloc settings the worker should report: the compiled-in defaults, then MALLOC_CONF key by key."""
    expected = {}
    for pair in f"{compiled_conf},{config.env.get('MALLOC_CONF', '')}".split(","):
        key, _, value = pair.partition(":")
        if key in ("narenas", "dirty_decay_ms"):
            expected[key] = int(value)
        elif key == "background_thread":
            expected[key] = value == "true"
    return expected
