"""Test programs (tests/programs/NAME.c) built in a stack's build image, to run in its dynos.

A program is compiled once per stack and source: the binary is kept under .cache/programs,
named by the hash of its source, and mounted read-only into the dynos that run it (the slug
stays as bin/compile left it).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from .docker import run_once
from .images import StackImages
from .paths import CACHE, REPO

SOURCES = REPO / "tests" / "programs"
# Where a dyno finds the programs it was booted with (dyno_options).
MOUNT = "/opt/test-programs"
_lock = threading.Lock()


def build(stack_images: StackImages, name: str) -> Path:
    """The host path of program NAME built with the stack's compiler (gcc of its build image)."""
    source = SOURCES / f"{name}.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    out_dir = CACHE / "programs" / stack_images.stack.name
    binary = out_dir / f"{name}-{digest}"
    with _lock:
        if not binary.exists():
            out_dir.mkdir(parents=True, exist_ok=True)
            partial = out_dir / f".{binary.name}.partial"
            run_once(stack_images.build, "gcc", "-O2", "-Wall", "-Werror", "-o", f"/out/{partial.name}",
                     f"/src/{source.name}", "-pthread", "-ldl", user="root",
                     volumes=[f"{SOURCES}:/src:ro", f"{out_dir}:/out"], timeout=300)
            partial.chmod(0o755)
            partial.rename(binary)
    return binary


def dyno_options(*binaries: Path) -> tuple[str, ...]:
    """`docker run` options that put BINARIES in a dyno at MOUNT/<name> (the name without its hash)."""
    options: list[str] = []
    for binary in binaries:
        name = binary.name.rsplit("-", 1)[0]
        options += ["--volume", f"{binary}:{MOUNT}/{name}:ro"]
    return tuple(options)
