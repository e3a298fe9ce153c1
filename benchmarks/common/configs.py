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
    # A jemalloc other than the slug's that the dyno preloads instead (say the stack's own package).
    library: str | None = None
    # Where the config means something: the stacks (none: all) and the apps' languages (none: all).
    stacks: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    # Why it is limited so, for the line that says a config was left out.
    limited_because: str = ""

    @property
    def mapped_libraries(self) -> list[str]:
        """The jemalloc libraries each process of its dyno maps: the slug's, another, or none."""
        return [self.library or LIBRARY] if self.jemalloc else []

    @property
    def slug_jemalloc(self) -> bool:
        """Whether its dynos run the slug's jemalloc, whose JEMALLOC_METRICS figures the benchmark reads."""
        return self.jemalloc and self.library is None

    def applies_to(self, stack: str, language: str) -> bool:
        return (not self.stacks or stack in self.stacks) and (not self.languages or language in self.languages)

    def to_json(self) -> dict:
        return {"env": self.env, "about": self.about, "build": self.build, "library": self.library,
                "stacks": list(self.stacks), "languages": list(self.languages),
                "limited_because": self.limited_because}

    @classmethod
    def from_json(cls, name: str, data: dict) -> Config:
        """A config as the results' JSON records it (to_json; files written before the configs knew
        their library and where they apply have only env, about and build)."""
        env = data["env"]
        library = data.get("library")
        jemalloc = env.get("JEMALLOC_ENABLED") == "true" or library is not None
        return cls(name, env, jemalloc, data["about"], data["build"], library, tuple(data.get("stacks", ())),
                   tuple(data.get("languages", ())), data.get("limited_because", ""))


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
JEMALLOC_NO_FORK_HELPER = Config(
    "jemalloc-no-fork-helper", {"JEMALLOC_ENABLED": "true", "JEMALLOC_BACKGROUND_THREAD_AFTER_FORK": "false"}, True,
    "the buildpack's default without its fork helper: forked children lose the background thread")
# What a user would pick instead of this buildpack.
# The best-known jemalloc buildpack: jemalloc built with its own defaults, preloaded with the
# MALLOC_CONF its README recommends (and Rails' Dockerfile generator shipped). That is this
# buildpack's compiled-in tuning without the fork helper, on a JEMALLOC_TUNING=none build.
PEER_MALLOC_CONF = "dirty_decay_ms:1000,narenas:2,background_thread:true"
PEER_BUILDPACK = Config(
    "peer-buildpack", {"JEMALLOC_ENABLED": "true", "MALLOC_CONF": PEER_MALLOC_CONF}, True,
    f"the best-known jemalloc buildpack's setup: a stock build, MALLOC_CONF={PEER_MALLOC_CONF}", "stock")
# Ubuntu's libjemalloc2 from the stack's archive, preloaded with no settings, as Rails' Dockerfile
# does (on Heroku: the apt buildpack). Only heroku-26's soak image has it; amd64 only, as the
# soak benchmark is.
STACK_LIBRARY = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
STACK_LIBJEMALLOC2 = Config(
    "stack-libjemalloc2", {"LD_PRELOAD": STACK_LIBRARY}, True,
    "Ubuntu's libjemalloc2 package, preloaded with no settings (LD_PRELOAD, as Rails' Dockerfile does)",
    library=STACK_LIBRARY, stacks=("heroku-26",), limited_because="it needs Ubuntu's libjemalloc2, which only heroku-26's soak image has")
# CPython 3.13 and later ship mimalloc as an allocator of their own objects.
PYMALLOC_MIMALLOC = Config(
    "pymalloc-mimalloc", {"PYTHONMALLOC": "mimalloc"}, False,
    "PYTHONMALLOC=mimalloc: CPython's own mimalloc for Python's objects, glibc for the rest",
    stacks=("heroku-26",), languages=("python",),
    limited_because="it is for Python apps on Python 3.13 or later (heroku-26's Python is 3.14, heroku-24's 3.12)")
