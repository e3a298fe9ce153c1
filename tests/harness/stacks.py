"""What each Heroku stack is (the facts the images must reproduce) and which stacks to test.

The facts come from ../shared/stacks/README.md; test_stack_images.py checks every image
against them, so a wrong fact or a wrong image fails loudly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Stack:
    name: str
    ubuntu_suite: str
    ubuntu_version: str
    # None where the table only says "newer" than the previous stack's.
    glibc: str | None
    merged_usr: bool
    default_user: str
    default_uid: int
    has_heroku_user: bool
    run_image_has_compiler: bool
    run_image_has_python: bool
    required: bool
    # The stand-in for a Fir dyno's arm64 machine differs from the five in these.
    arch: str = "amd64"
    distribution: str = "ubuntu"
    # Whose package lists the images install (the stack's own by default).
    package_lists: str | None = None
    # How many of the listed packages may be in no reachable archive, in percent.
    max_missing_percent: int = 3
    # What STACK says in a classic build on these images (the stack's name by default).
    classic_name: str | None = None

    @property
    def platform(self) -> str:
        return f"linux/{self.arch}"

    @property
    def stack_variable(self) -> str:
        return self.classic_name or self.name

    @property
    def number(self) -> str:
        return self.name.split("-", 1)[1]

    @property
    def upstream_run_image(self) -> str:
        return f"heroku/heroku:{self.number}"

    @property
    def upstream_build_image(self) -> str:
        return f"heroku/heroku:{self.number}-build"


STACKS: dict[str, Stack] = {
    stack.name: stack
    for stack in (
        Stack("heroku-18", "bionic", "18.04", "2.27", False, "root", 0, False, True, True, True),
        Stack("heroku-20", "focal", "20.04", "2.31", False, "root", 0, False, True, True, True),
        Stack("heroku-22", "jammy", "22.04", "2.35", True, "root", 0, True, True, True, True),
        Stack("heroku-24", "noble", "24.04", "2.39", True, "heroku", 1000, True, False, False, True),
        Stack("heroku-26", "resolute", "26.04", None, True, "heroku", 1000, True, False, False, True),
    )
}

# Fir's dynos are arm64, and Ubuntu's arm64 archive (ports.ubuntu.com) cannot be reached here,
# so the arm64 tests run on Debian trixie (glibc 2.41, gcc 14: the Debian release closest to
# heroku-26's Ubuntu 26.04) for arm64, under qemu-user emulation, with whichever of heroku-26's
# packages Debian has (all but about 7% of them: gcc-15, the t64-renamed and Ubuntu-only ones).
# Not a selectable stack: only tests/test_arm64.py builds and uses it.
ARM64_STAND_IN = Stack("debian-trixie-arm64", "trixie", "13", "2.41", True, "heroku", 1000, True, False, False, False,
                       arch="arm64", distribution="debian", package_lists="heroku-26", max_missing_percent=10,
                       classic_name="heroku-26")

REQUIRED = [name for name, stack in STACKS.items() if stack.required]

# Where the buildpack's own bash logic (the cache, the fault handling, the choice of configure
# options) is tested in real images: what differs between stacks for it is bash's version and
# the build user. heroku-18 has the oldest bash (4.4) and builds as root; heroku-24 builds as
# the unprivileged heroku user with bash 5.2 (heroku-26's build is like it). What depends on the
# stack itself (that each version compiles and runs, profiling, the runtime) is tested on every
# stack; these are not, to keep CI within its time.
BUILD_LOGIC_STACKS = ("heroku-18", "heroku-24")


def selected_stacks(option: str | None = None) -> list[Stack]:
    """The stacks to test: the option's (or $STACKS') comma-separated list, 'all', or the required ones."""
    value = (option or os.environ.get("STACKS") or "").strip()
    if not value:
        names = REQUIRED
    elif value == "all":
        names = list(STACKS)
    else:
        names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in STACKS]
    if unknown:
        raise ValueError(f"unknown stack(s) {', '.join(unknown)}; known: {', '.join(STACKS)} or 'all'")
    return [STACKS[name] for name in names]
