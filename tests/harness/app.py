"""An app that this repository's buildpack compiles, and the dynos it boots, as Heroku does both.

Compile (../shared/stacks/README.md): bin/compile runs in Dockerfile.test (the stack's build
image with this buildpack in it) as the image's default user, with BUILD_DIR a fresh /tmp/build_<random> (not /app), a CACHE_DIR that
persists across compiles of the same app, and an ENV_DIR with one file per config var. The
buildpack belongs to root there, so on heroku-24 and later it cannot write into itself.

Boot: the compiled tree is copied, like a slug, and mounted at /app in the run image; config
vars, DYNO, PORT, HOME=/app and STACK are in the environment; bash sources each
/app/.profile.d/*.sh, then /app/.profile, then runs the command with `bash -c`.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import yaml

from . import compiles
from .docker import Result, container_name, remove_container, run_once, start
from .dyno import LAUNCHER, LOGIN, Dyno
from .images import StackImages, buildpack_image
from .parsers import CheckAnswer, parse_build_info, parse_check, parse_report
from .paths import APP, BUILD_INFO, JEMALLOC_FIXTURES, REPO, slug_relative
from .sources import FIXTURES_MOUNT

APPS = REPO / "tests" / "apps"
BUILDPACK_MOUNT = "/tmp/buildpacks/jemalloc"
CACHE_MOUNT = "/tmp/cache"
ENV_MOUNT = "/tmp/env"
COMPILE_TIMEOUT = 15 * 60


class BuildOutcome:
    """What a build of either platform said (returncode, stdout, stderr), and its facts."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @staticmethod
    def _build_info(info: Path) -> dict[str, str]:
        return parse_build_info(info.read_text()) if info.exists() else {}


@dataclass
class Build(BuildOutcome):
    """What a compile left: its exit status and output, and the compiled tree."""

    stack_images: StackImages
    returncode: int
    stdout: str
    stderr: str
    build_dir: Path
    detect_output: str
    release: dict | None = None
    next_buildpack_output: str | None = None

    def path(self, relative: str) -> Path:
        """A file of the compiled tree: RELATIVE to it, or as a dyno sees it (harness.paths' /app/... names)."""
        if relative.startswith("/"):
            relative = slug_relative(relative)
        return self.build_dir / relative

    def build_info(self) -> dict[str, str]:
        """The facts the build recorded in the slug (vendor/jemalloc/build-info); {} if none."""
        return self._build_info(self.path(BUILD_INFO))


@dataclass
class AppWorkspace:
    """What an app of either platform has: its source, a host directory for its builds, the
    containers it started (removed by cleanup, also after a failed test), and the dynos it boots.

    Use it as a context manager, or call cleanup()."""

    stack_images: StackImages
    source: str = "sample"
    workspace: Path = None  # a fresh temporary directory unless given
    _containers: list[str] = field(default_factory=list)
    # Names the workspace and the containers.
    KIND: ClassVar[str] = "app"

    def __post_init__(self) -> None:
        if self.workspace is None:
            self.workspace = Path(tempfile.mkdtemp(prefix=f"jemalloc-buildpack-{self.KIND}-"))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.cleanup()

    @property
    def stack(self):
        return self.stack_images.stack

    def _own(self, path: Path) -> None:
        """Give a host directory to the image's default user, who must write in it."""
        uid = self.stack.default_uid
        for root, dirs, files in os.walk(path):
            os.chown(root, uid, uid)
            for name in dirs + files:
                os.lchown(os.path.join(root, name), uid, uid)

    def _container_name(self, kind: str) -> str:
        name = container_name(f"{self.KIND}-{kind}")
        self._containers.append(name)
        return name

    def _run_once(self, image: str, *command: str, kind: str, name: str | None = None, **options) -> Result:
        """harness.docker.run_once, in a container this app removes at cleanup whatever happens."""
        if name:
            self._containers.append(name)
        return run_once(image, *command, name=name or self._container_name(kind), **options)

    def _start_dyno(self, image: str, *command: str, own_dir: Path | None, login=LOGIN, **options) -> Dyno:
        """A detached container of IMAGE running COMMAND, as a Dyno removed after the test."""
        name = self._container_name("dyno")
        start(image, *command, name=name, **options)
        dyno = Dyno(name, self.stack, own_dir, login)
        LIVE_DYNOS.append(dyno)
        return dyno

    @staticmethod
    def _one_off(dyno: Dyno, timeout: float) -> Result:
        """Wait for a one-off dyno's command to end and remove the dyno: the command's result."""
        try:
            return dyno.wait(timeout)
        finally:
            dyno.remove()

    def run(self, build, command: str, config: dict[str, str] | None = None, *args, **kwargs) -> Result:
        raise NotImplementedError

    def check(self, build, *arguments: str | int, config: dict[str, str] | None = None, **run_options) -> CheckAnswer:
        """`jemalloc-check --json ARGUMENTS...` in a one-off dyno of BUILD with CONFIG: its JSON
        answer, with .returncode and .stderr. RUN_OPTIONS go to run() (process_type...)."""
        result = self.run(build, shlex.join(["jemalloc-check", "--json", *map(str, arguments)]), config, **run_options)
        return parse_check(result.stdout, result.returncode, result.stderr)

    def cleanup(self) -> None:
        for name in self._containers:
            remove_container(name)
        shutil.rmtree(self.workspace, ignore_errors=True)


@dataclass
class App(AppWorkspace):
    """One app on Heroku's classic platform: its source, its build cache, and everything to
    clean up afterwards."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.cache_dir = self.workspace / "cache"
        self.cache_dir.mkdir()
        self._own(self.cache_dir)

    def compile(self, config: dict[str, str] | None = None, timeout: float = COMPILE_TIMEOUT,
                next_buildpack: str | None = None, *, build_dir: Path | None = None,
                cache_path: str = CACHE_MOUNT, docker_args: list[str] | None = None,
                compile_container: str | None = None) -> Build:
        """Run bin/detect, bin/compile and bin/release of this repository on the app.

        NEXT_BUILDPACK, a shell command, then runs in the same container the way Heroku runs the
        app's next buildpack: after sourcing this buildpack's `export` file, if it wrote one. Its
        output is in Build.next_buildpack_output.

        For fault tests: BUILD_DIR (a directory of this app's workspace, say an earlier build's)
        is compiled in place of a fresh copy of the app; CACHE_PATH is the CACHE_DIR given to
        bin/compile (a path under a mount of DOCKER_ARGS); DOCKER_ARGS are added to bin/compile's
        `docker run` (mounts, --env, --tmpfs); COMPILE_CONTAINER names its container, so that a
        test can signal it.
        """
        if build_dir is None:
            build_dir = self.workspace / f"build_{secrets.token_hex(6)}"
            shutil.copytree(APPS / self.source, build_dir, symlinks=True)
        build_name = build_dir.name
        env_dir = self.workspace / f"env_{secrets.token_hex(6)}"
        env_dir.mkdir()
        for name, value in (config or {}).items():
            (env_dir / name).write_text(value)
        self._own(build_dir)
        build_path = f"/tmp/{build_name}"
        image = buildpack_image(self.stack_images)
        volumes = [
            f"{build_dir}:{build_path}",
            f"{self.cache_dir}:{CACHE_MOUNT}",
            f"{env_dir}:{ENV_MOUNT}:ro",
            f"{JEMALLOC_FIXTURES}:{FIXTURES_MOUNT}:ro",
        ]

        def run(script: str, *args: str, run_timeout: float = 60, then: str | None = None,
                extra: list[str] | None = None, name: str | None = None):
            command = [f"{BUILDPACK_MOUNT}/bin/{script}", *args]
            if then:
                command = ["bash", "-c", f'"$@" || exit\n{then}', "buildpack", *command]
            return self._run_once(image, *command, kind="compile", name=name, network="host", volumes=volumes,
                                  options=extra or [], timeout=run_timeout, check=False)

        detect = run("detect", build_path)
        started = time.monotonic()
        if next_buildpack is None:
            compiled = run("compile", build_path, cache_path, ENV_MOUNT, run_timeout=timeout,
                           extra=docker_args, name=compile_container)
        else:
            scratch = self.workspace / f"next_{build_name}"
            scratch.mkdir()
            self._own(scratch)
            volumes.append(f"{scratch}:/tmp/next-buildpack")
            compiled = run("compile", build_path, CACHE_MOUNT, ENV_MOUNT, run_timeout=timeout,
                           then=f"if [ -f {BUILDPACK_MOUNT}/export ]; then . {BUILDPACK_MOUNT}/export; fi\n"
                                f"( {next_buildpack} ) >/tmp/next-buildpack/output 2>&1")
        compiles.record("classic", self.stack.name, compiled.stdout, time.monotonic() - started)
        build = Build(self.stack_images, compiled.returncode, compiled.stdout, compiled.stderr, build_dir,
                      detect.stdout + detect.stderr)
        if next_buildpack is not None:
            output = scratch / "output"
            build.next_buildpack_output = output.read_text() if output.exists() else None
        if build.succeeded:
            released = run("release", build_path)
            assert released.returncode == 0, f"bin/release failed: {released.output}"
            build.release = yaml.safe_load(released.stdout)
        return build

    def report_output(self) -> str:
        """bin/report's output for this app's last build, as it printed it."""
        empty_env = self.workspace / "report_env"
        empty_env.mkdir(exist_ok=True)
        result = self._run_once(
            buildpack_image(self.stack_images), f"{BUILDPACK_MOUNT}/bin/report", "/tmp/build", CACHE_MOUNT, ENV_MOUNT,
            kind="report", volumes=[f"{self.cache_dir}:{CACHE_MOUNT}:ro", f"{empty_env}:{ENV_MOUNT}:ro"],
        )
        return result.stdout

    def report(self) -> dict:
        """bin/report's facts about this app's last build, parsed ({} when it printed none)."""
        return parse_report(self.report_output())

    def slug(self, build: Build) -> Path:
        """A fresh copy of a compiled tree, as every dyno gets its own copy of the slug."""
        slug = self.workspace / f"slug_{secrets.token_hex(6)}"
        shutil.copytree(build.build_dir, slug, symlinks=True)
        self._own(slug)
        return slug

    def boot(
        self,
        build_or_slug: Build | Path,
        command: str,
        config: dict[str, str] | None = None,
        process_type: str = "web",
        network: str = "none",
        docker_options: tuple[str, ...] = (),
    ) -> Dyno:
        """Start a dyno of the app running COMMAND; the caller waits for it or inspects it.

        NETWORK is docker's --network (no network by default; the benchmark joins a dyno to
        the loopback of a container that runs the app's Redis), DOCKER_OPTIONS more options of
        `docker run` (say, a memory limit). The dyno, and the slug copy made for it, are removed
        by remove_dynos(): conftest does that after every test, also a failed one.
        """
        own_slug = not isinstance(build_or_slug, Path)
        slug = self.slug(build_or_slug) if own_slug else build_or_slug
        environment = {"HOME": "/app", "DYNO": f"{process_type}.1", "STACK": self.stack.name}
        if process_type == "web":
            environment["PORT"] = "5000"
        environment.update(config or {})
        return self._start_dyno(
            self.stack_images.run, "bash", "-c", LAUNCHER, "dyno", command, own_dir=slug if own_slug else None,
            network=network, volumes=[f"{slug}:{APP}"], workdir=APP, env=environment, options=docker_options,
        )

    def run(self, build_or_slug: Build | Path, command: str, config: dict[str, str] | None = None,
            process_type: str = "run", timeout: float = 120, docker_options: tuple[str, ...] = ()):
        """A one-off dyno (`heroku run`): boot, wait for the command to end, return its result."""
        dyno = self.boot(build_or_slug, command, config, process_type, docker_options=docker_options)
        return self._one_off(dyno, timeout)


# Dynos booted and not yet removed, whichever app booted them.
LIVE_DYNOS: list[Dyno] = []


def remove_dynos() -> None:
    """Remove every dyno still there, with the slug copy it was booted from."""
    while LIVE_DYNOS:
        LIVE_DYNOS.pop().remove()
