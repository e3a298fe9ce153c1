"""Docker images of the Heroku stacks: Heroku's own where they can be pulled, equivalents otherwise.

An equivalent is built the way ../shared/stacks/README.md describes: debootstrap the stack's
Ubuntu release (minbase), import it, add the -updates and -security pockets and upgrade,
install the packages of Heroku's list for the image, and create the users. The run image is
built first and the build image on top of it, as Heroku does. Each image carries a label with
the hash of everything it was built from (package list, recipe, stack facts), so an image is
reused while its inputs are unchanged and rebuilt as soon as one changes.

The arm64 stand-in (harness.stacks.ARM64_STAND_IN) is made the same way from Debian's archive,
for arm64: debootstrap's second stage and every layer's commands run under qemu-user.

STACK_IMAGES selects the source: `auto` (default: Heroku's images if present or pullable,
else build), `upstream` (Heroku's images only), `local` (always the equivalents).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .docker import (HOST_ARCHITECTURE, DockerError, architecture_options, docker, image_exists, image_id, image_label,
                     image_platform, remove_container, remove_replaced_image, run_once)
from .paths import CACHE, REPO, SHARED
from .stacks import Stack

# Bump when this module's way of building changes in a way the hashed files below do not show.
RECIPE_VERSION = "1"
KEY_LABEL = "io.jemalloc-buildpack.stack-image-key"
# Not the harness's LABEL: a test session removes leftover test containers at its start, and
# must not kill an image build that runs beside it.
BUILDER_LABEL = "io.jemalloc-buildpack.image-builder"
RECORD_DIR = "/usr/share/jemalloc-buildpack-harness"
ARCHIVE = "http://archive.ubuntu.com/ubuntu"
ARCHIVES = {"ubuntu": ARCHIVE, "debian": "http://deb.debian.org/debian"}
# Bookworm's debootstrap does not know Ubuntu's archive key, and bookworm has no package with
# it; Ubuntu's own keyring package is fetched from Ubuntu's archive and pinned here.
KEYRING_DEB_URL = f"{ARCHIVE}/pool/main/u/ubuntu-keyring/ubuntu-keyring_2023.11.28.1_all.deb"
KEYRING_DEB_SHA256 = "36de43b15853ccae0028e9a767613770c704833f82586f28eb262f0311adb8a8"
# Bookworm's debootstrap has no script for noble and later; gutsy's works for them.
DEBOOTSTRAP_SCRIPTS = {"noble": "gutsy", "resolute": "gutsy"}
# The shell half of the recipe, run inside the image as it is built.
RECIPE_DIR = REPO / "tests" / "stack-images"
RECIPE_FILES = [RECIPE_DIR / "install-packages.sh", RECIPE_DIR / "finish-image.sh"]

IMAGE_BUILD_TIMEOUT = 30 * 60
# Every program of an emulated image's build runs under qemu-user: the arm64 stand-in's layers
# took 15 minutes each on 2 idle cores.
EMULATED_IMAGE_BUILD_TIMEOUT = 90 * 60
_pull_failed = threading.Event()


class ImageBuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class StackImages:
    stack: Stack
    run: str
    build: str
    upstream: bool


def package_list(stack: Stack, kind: str) -> Path:
    suffix = "" if kind == "run" else "-build"
    return SHARED / "stacks" / f"{stack.package_lists or stack.name}{suffix}.packages"


def local_tag(stack: Stack, kind: str) -> str:
    return f"jemalloc-buildpack-stack/{stack.name}:{kind}"


def input_key(stack: Stack, kind: str) -> str:
    """Hash of everything an image is made from; the build image's includes its run image's."""
    digest = hashlib.sha256()
    digest.update(f"recipe {RECIPE_VERSION}\n{stack!r}\n{kind}\n".encode())
    if kind == "base":
        return digest.hexdigest()
    digest.update(input_key(stack, "base" if kind == "run" else "run").encode())
    for path in [*RECIPE_FILES, package_list(stack, kind)]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _log(message: str) -> None:
    print(f"[stack images] {message}", file=sys.stderr, flush=True)


def ensure(stack: Stack) -> StackImages:
    """The run and build images of the stack, pulling or building whatever is missing or stale."""
    mode = os.environ.get("STACK_IMAGES", "auto")
    if mode not in ("auto", "upstream", "local"):
        raise ImageBuildError(f"STACK_IMAGES={mode!r}: use auto, upstream or local")
    # The arm64 stand-in has no Heroku image to pull: it is always built.
    if mode in ("auto", "upstream") and stack.distribution == "ubuntu":
        images = _upstream(stack, pull=mode == "upstream" or not _pull_failed.is_set())
        if images:
            return images
        if mode == "upstream":
            raise ImageBuildError(f"{stack.upstream_run_image} and {stack.upstream_build_image} could not be pulled")
    for kind in ("base", "run", "build"):
        _ensure_local(stack, kind)
    return StackImages(stack, local_tag(stack, "run"), local_tag(stack, "build"), upstream=False)


def _upstream(stack: Stack, pull: bool) -> StackImages | None:
    names = (stack.upstream_run_image, stack.upstream_build_image)
    for name in names:
        if image_exists(name):
            continue
        if not pull:
            return None
        result = docker("pull", name, check=False, timeout=600)
        if result.returncode != 0:
            _pull_failed.set()
            _log(f"cannot pull {name} ({result.stderr.strip().splitlines()[-1:]}); building an equivalent")
            return None
    return StackImages(stack, *names, upstream=True)


def _ensure_local(stack: Stack, kind: str) -> None:
    tag = local_tag(stack, kind)
    key = input_key(stack, kind)
    if image_label(tag, KEY_LABEL) == key and image_platform(tag) == stack.platform:
        return
    _log(f"building {tag}")
    previous = image_id(tag)
    started = time.monotonic()
    if kind == "base":
        _build_base(stack, tag, key)
    else:
        _build_layer(stack, kind, tag, key)
    _log(f"built {tag} in {time.monotonic() - started:.0f}s")
    remove_replaced_image(previous)


def _emulated(stack: Stack) -> bool:
    """Whether the stack's images are of another architecture than this machine's."""
    return stack.arch != HOST_ARCHITECTURE


def _ubuntu_keyring() -> Path:
    keyring = CACHE / "ubuntu-keyring" / "ubuntu-archive-keyring.gpg"
    if keyring.exists():
        return keyring
    keyring.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=keyring.parent) as scratch:
        deb = Path(scratch) / "ubuntu-keyring.deb"
        with urllib.request.urlopen(KEYRING_DEB_URL, timeout=60) as response:
            deb.write_bytes(response.read())
        actual = hashlib.sha256(deb.read_bytes()).hexdigest()
        if actual != KEYRING_DEB_SHA256:
            raise ImageBuildError(f"{KEYRING_DEB_URL}: sha256 {actual}, expected {KEYRING_DEB_SHA256}")
        subprocess.run(["dpkg-deb", "-x", str(deb), scratch], check=True, timeout=60)
        shutil.copy(Path(scratch) / "usr/share/keyrings/ubuntu-archive-keyring.gpg", keyring)
    return keyring


def _run_logged(command: list[str], log: Path, timeout: float) -> None:
    with log.open("a") as output:
        output.write(f"$ {' '.join(command)}\n")
        output.flush()
        try:
            completed = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise ImageBuildError(f"timed out after {timeout}s: {' '.join(command)} (log: {log})") from error
    if completed.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise ImageBuildError(f"exit {completed.returncode}: {' '.join(command)}\n{tail}\n(full log: {log})")


def _log_file(tag: str) -> Path:
    logs = CACHE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / (tag.replace("/", "_").replace(":", "_") + ".log")
    log.write_text("")
    return log


def _build_base(stack: Stack, tag: str, key: str) -> None:
    if not shutil.which("debootstrap"):
        raise ImageBuildError("debootstrap is not installed (apt-get install debootstrap); scripts/setup installs it")
    log = _log_file(tag)
    work = Path(tempfile.mkdtemp(prefix=f"{stack.name}-rootfs-", dir="/var/tmp"))
    try:
        root = work / "root"
        # A foreign architecture's second stage runs under qemu-user (binfmt_misc's F entry:
        # scripts/lib/environment.sh); Debian's archive key is the host's own.
        command = ["debootstrap", "--variant=minbase", f"--arch={stack.arch}"]
        if stack.distribution == "ubuntu":
            command.append(f"--keyring={_ubuntu_keyring()}")
        if not stack.merged_usr:
            command.append("--no-merged-usr")
        command += [stack.ubuntu_suite, str(root), ARCHIVES[stack.distribution]]
        if stack.ubuntu_suite in DEBOOTSTRAP_SCRIPTS:
            command.append(f"/usr/share/debootstrap/scripts/{DEBOOTSTRAP_SCRIPTS[stack.ubuntu_suite]}")
        _run_logged(command, log, timeout=45 * 60 if _emulated(stack) else 15 * 60)
        tarball = work / "root.tar"
        _run_logged(["tar", "-C", str(root), "-cf", str(tarball), "."], log, timeout=10 * 60)
        _load_rootfs(tarball, tag, key, stack.arch, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _load_rootfs(tarball: Path, tag: str, key: str, arch: str, work: Path) -> None:
    """The root file system in TARBALL as the one layer of image TAG, for ARCH, labelled KEY.

    `docker load` of an image archive written here, not `docker import`: import cannot name
    another architecture than the engine's unless the engine runs in experimental mode."""
    digest = hashlib.sha256()
    with tarball.open("rb") as layer:
        for block in iter(lambda: layer.read(1 << 20), b""):
            digest.update(block)
    config = {
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["/bin/bash"], "Labels": {KEY_LABEL: key}},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{digest.hexdigest()}"]},
        "history": [{"created_by": "debootstrap (tests/harness/images.py)"}],
    }
    archive = work / "image.tar"
    with tarfile.open(archive, "w") as image:
        for name, data in (("config.json", json.dumps(config).encode()),
                           ("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": [tag],
                                                          "Layers": ["layer.tar"]}]).encode())):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            image.addfile(member, io.BytesIO(data))
        image.add(tarball, arcname="layer.tar")
    tarball.unlink()
    docker("load", "--input", str(archive), timeout=10 * 60)


def commit_image(container: str, tag: str, user: str, label: str, key: str, timeout: float) -> None:
    """CONTAINER committed as TAG: run as USER (the stack's own), labelled LABEL=KEY, bash its command."""
    docker(
        "commit",
        "--change", f"USER {user}",
        "--change", f"LABEL {label}={key}",
        "--change", 'CMD ["/bin/bash"]',
        container, tag,
        timeout=timeout,
    )


def _build_layer(stack: Stack, kind: str, tag: str, key: str) -> None:
    log = _log_file(tag)
    parent = local_tag(stack, "base" if kind == "run" else "run")
    container = f"jemalloc-buildpack-image-{stack.name}-{kind}-{os.getpid()}"
    steps = [f"/recipe/install-packages.sh {stack.ubuntu_suite} /lists/{package_list(stack, kind).name} {RECORD_DIR}/{kind}"
             f" {stack.max_missing_percent} {stack.distribution}"]
    if kind == "run":
        heroku_user = "yes" if stack.has_heroku_user else "no"
        steps.append(f"/recipe/finish-image.sh {stack.name} {heroku_user} {RECORD_DIR}")
    remove_container(container)
    try:
        with log.open("a") as output:
            output.write(f"$ docker run {parent}: {' && '.join(steps)}\n")
        result = docker(
            "run", *architecture_options(parent), "--name", container, "--label", BUILDER_LABEL, "--user", "root",
            "--network", "host",
            "--volume", f"{RECIPE_DIR}:/recipe:ro",
            "--volume", f"{SHARED / 'stacks'}:/lists:ro",
            parent, "bash", "-c", " && ".join(steps),
            check=False, timeout=EMULATED_IMAGE_BUILD_TIMEOUT if _emulated(stack) else IMAGE_BUILD_TIMEOUT,
        )
        with log.open("a") as output:
            output.write(result.output)
        if result.returncode != 0:
            tail = "\n".join(result.output.splitlines()[-30:])
            raise ImageBuildError(f"building {tag} failed:\n{tail}\n(full log: {log})")
        commit_image(container, tag, stack.default_user, KEY_LABEL, key, timeout=10 * 60)
    except DockerError as error:
        raise ImageBuildError(f"building {tag}: {error}") from error
    finally:
        remove_container(container)


def missing_packages(images: StackImages, kind: str) -> tuple[list[str], int] | None:
    """The listed packages an equivalent image lacks, and how many were listed; None for Heroku's."""
    if images.upstream:
        return None
    image = images.run if kind == "run" else images.build
    result = run_once(image, "cat", f"{RECORD_DIR}/{kind}/missing-packages", f"{RECORD_DIR}/{kind}/listed-count")
    lines = result.stdout.split()
    return lines[:-1], int(lines[-1])


_buildpack_images: dict[str, str] = {}
_buildpack_images_lock = threading.Lock()


def buildpack_image(images: StackImages) -> str:
    """Dockerfile.test built on the stack's build image: the buildpack as Heroku installs it.

    Built once per stack and harness process, from the working tree, so that what is tested is
    what is checked out.
    """
    with _buildpack_images_lock:
        if images.stack.name not in _buildpack_images:
            # One tag per checkout: two checkouts testing at once (worktrees, CI beside a developer)
            # must not run each other's buildpack.
            checkout = hashlib.sha256(str(REPO).encode()).hexdigest()[:8]
            tag = f"jemalloc-buildpack-test:{images.stack.name}-{checkout}"
            docker(
                "build", "--quiet", "--file", str(REPO / "Dockerfile.test"), "--tag", tag,
                "--platform", images.stack.platform,
                "--build-arg", f"STACK_BUILD_IMAGE={images.build}", "--build-arg", f"STACK={images.stack.stack_variable}",
                str(REPO),
                timeout=10 * 60,
            )
            _buildpack_images[images.stack.name] = tag
        return _buildpack_images[images.stack.name]
