"""Benchmark images: a stack's run image plus packages from the stack's own Ubuntu archive.

The soak benchmark runs the programs a Heroku app would run (Ubuntu's python3, ruby, Sidekiq,
puma, Celery, Redis of that release) in the stack's run image; jemalloc comes only from the slug.
An image is reused while its run image and package list are unchanged.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from contextlib import contextmanager

from harness.docker import docker, image_id, image_label, remove_container, remove_replaced_image
from harness.images import BUILDER_LABEL, StackImages, commit_image
from harness.paths import CACHE

KEY_LABEL = "io.jemalloc-buildpack.benchmark-image-key"


class ImageError(RuntimeError):
    pass


@contextmanager
def file_lock(name: str):
    """Serializes what two benchmark runs (say, a test and a user) would otherwise do twice at once."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def recipe(packages: tuple[str, ...]) -> str:
    return (
        "set -e\n"
        "export DEBIAN_FRONTEND=noninteractive\n"
        "apt-get update -q\n"
        f"apt-get install -y -q --no-install-recommends {' '.join(packages)}\n"
        "rm -rf /var/lib/apt/lists/*\n"
    )


def run_image_with(stack_images: StackImages, name: str, packages: tuple[str, ...], say=print) -> str:
    """The tag of the stack's run image plus PACKAGES, built when missing or out of date."""
    stack = stack_images.stack
    tag = f"jemalloc-buildpack-{name}/{stack.name}:run"
    script = recipe(packages)
    run_image_id = docker("image", "inspect", "--format", "{{.Id}}", stack_images.run).stdout.strip()
    key = hashlib.sha256(f"{run_image_id}\n{script}".encode()).hexdigest()
    with file_lock(f"{name}-image-{stack.name}"):
        if image_label(tag, KEY_LABEL) == key:
            return tag
        say(f"   building {tag}: {stack_images.run} + {' '.join(packages)} from Ubuntu {stack.ubuntu_suite}")
        previous = image_id(tag)
        container = f"jemalloc-buildpack-{name}-image-{stack.name}-{os.getpid()}"
        remove_container(container)
        try:
            result = docker(
                "run", "--name", container, "--label", BUILDER_LABEL, "--user", "root", "--network", "host",
                stack_images.run, "bash", "-c", script,
                check=False, timeout=20 * 60,
            )
            if result.returncode != 0:
                raise ImageError(f"building {tag} failed:\n{result.output[-3000:]}")
            # Back to the stack's own user: the dynos must run as they do in the stack's run image.
            commit_image(container, tag, stack.default_user, KEY_LABEL, key, timeout=5 * 60)
        finally:
            remove_container(container)
        remove_replaced_image(previous)
        return tag
