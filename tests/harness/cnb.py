"""Apps built and launched as Heroku Fir does: the real CNB lifecycle in a builder image, an app
image in the Docker engine, and containers of that image as dynos.

    build:   the five phases of the lifecycle (harness.lifecycle's v0.21.12, Platform API 0.14),
             each in a container of the stack's builder image, as a Kubernetes platform runs
             them: analyzer (root, reads the previous app image from the Docker engine),
             detector (the heroku user, the order of /cnb/order.toml), restorer (root, from the
             app's cache directory), builder (the heroku user; the only phase on the host's
             network, for the loopback source server) and exporter (root, writes the app image
             into the Docker engine with -daemon, and the cache). /workspace, /layers and
             /platform are host directories of this build, the cache a host directory of the
             app that every build of it reuses, beside the launch cache that `pack build`
             also gives a -daemon analyzer and exporter (the launch layers exported: without
             it, a layer read from or reused of the previous image comes back out of the
             engine with the whole image, `docker save`, 30 s to 2 minutes a rebuild).
    launch:  `docker run` of the app image through its own entrypoint (the launcher, as
             /cnb/process/<type>), with the config vars and DYNO as Fir sets them; one-off
             commands as `launcher <cmd>`, which is what `heroku run:inside` and
             `heroku run:detached` start.

The app's processes come from its Procfile through the tests' procfile buildpack
(tests/buildpacks/procfile), which declares them as heroku/procfile does.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import shutil
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import compiles
from .app import APPS, AppWorkspace, BuildOutcome
from .docker import Result, docker
from .dyno import Dyno
from .lifecycle import BUILDPACK_ID, PLATFORM_API, Builder, builder, docker_socket, escaped

BUILD_TIMEOUT = 15 * 60
PHASE_TIMEOUT = 5 * 60
BUILDPACK_LAYERS = escaped(BUILDPACK_ID)
# The jemalloc layer as a launched process sees it: what the classic slug has under
# /app/vendor/jemalloc (harness.paths) is here.
LAYER = f"/layers/{BUILDPACK_LAYERS}/jemalloc"
# What LD_PRELOAD names (a link), and the file it points to: what /proc/PID/maps shows mapped.
LIBRARY = f"{LAYER}/tree/lib/libjemalloc.so"
LIBRARY_FILE = f"{LAYER}/tree/lib/libjemalloc.so.2"
BIN = f"{LAYER}/bin"
BUILD_INFO = f"{LAYER}/build-info"
# How a command runs in a running container as `heroku run:inside` runs it: through the launcher.
LOGIN = ("/cnb/lifecycle/launcher",)
LIFECYCLE_METADATA = "io.buildpacks.lifecycle.metadata"
ENGINE_SOCKET = "/var/run/docker.sock"
# The layer's identifier in the exporter's log: "Reusing layer '<id>'", "Adding layer '<id>'".
JEMALLOC_LAYER_ID = f"{BUILDPACK_ID}:jemalloc"
# A line the lifecycle's own logger wrote (its level in colour), not a buildpack.
LIFECYCLE_LINE = re.compile(r"^\x1b\[[0-9;]*m(ERROR|Warning): \x1b\[0m")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def split_build_output(output: str) -> tuple[str, str]:
    """The build phase's stdout as (what the buildpacks printed, what the lifecycle said)."""
    buildpacks, lifecycle = [], []
    for line in output.splitlines(keepends=True):
        if LIFECYCLE_LINE.match(line):
            lifecycle.append(ANSI.sub("", line))
        else:
            buildpacks.append(line)
    return "".join(buildpacks), "".join(lifecycle)


@dataclass
class Layer:
    """A layer of the app image as the lifecycle's metadata records it."""

    name: str
    types: dict
    metadata: dict
    digest: str


@dataclass
class CnbBuild(BuildOutcome):
    """One build. returncode is the lifecycle's (0, or the exit status of the phase that
    failed: 51 when a buildpack's bin/build failed); stdout is what the buildpacks printed in
    the build phase (the lifecycle gives a buildpack's stdout and stderr as one stream, in the
    order written, as Fir's build log shows them); stderr is what the lifecycle itself said then
    ("ERROR: failed to build: exit status 1"); phases holds each phase's result, seconds each
    phase's time."""

    returncode: int
    stdout: str
    stderr: str
    phases: dict[str, Result]
    seconds: dict[str, float]
    layers_dir: Path
    image: str | None = None
    image_id: str | None = None
    layers: dict[str, Layer] = field(default_factory=dict)

    @property
    def detect(self) -> Result:
        return self.phases["detector"]

    @property
    def failed_phase(self) -> str | None:
        return next((name for name, result in self.phases.items() if result.returncode != 0), None)

    @property
    def buildpack_status(self) -> int | None:
        """The exit status of the buildpack whose bin/build failed, as the builder reports it."""
        match = re.search(r"^ERROR: failed to build: exit status (\d+)$", self.stderr, re.MULTILINE)
        return int(match[1]) if match else None

    @property
    def export(self) -> str:
        """What the exporter said (empty when the build did not get that far)."""
        result = self.phases.get("exporter")
        return result.output if result else ""

    def layer_reused(self, layer_id: str = JEMALLOC_LAYER_ID) -> bool:
        """Whether the exporter reused the previous image's layer rather than add it anew."""
        if f"Reusing layer '{layer_id}'" in self.export:
            return True
        assert f"Adding layer '{layer_id}'" in self.export, self.export
        return False

    def entrypoint(self) -> list[str]:
        """The app image's entrypoint: /cnb/process/<the default process type>."""
        result = docker("image", "inspect", "--format", "{{json .Config.Entrypoint}}", self.image_id)
        return json.loads(result.stdout)

    def group(self) -> list[str]:
        """The IDs of the buildpacks the detector chose, in order."""
        return re.findall(r'^\s*id = "([^"]+)"', (self.layers_dir / "group.toml").read_text(), re.MULTILINE)

    def layer_files(self, name: str = "jemalloc") -> Path:
        """The host directory of a layer of this buildpack as the build left it."""
        return self.layers_dir / BUILDPACK_LAYERS / name

    def build_info(self) -> dict[str, str]:
        """The facts the build recorded in its jemalloc layer (build-info); {} if none."""
        return self._build_info(self.layer_files() / "build-info")


def _image_layers(image: str) -> dict[str, Layer]:
    """The layers of the app image's buildpacks, from the lifecycle's metadata label."""
    label = docker("image", "inspect", "--format", f'{{{{index .Config.Labels "{LIFECYCLE_METADATA}"}}}}', image)
    metadata = json.loads(label.stdout)
    layers = {}
    for buildpack in metadata.get("buildpacks", []):
        if buildpack["key"] != BUILDPACK_ID:
            continue
        for name, layer in (buildpack.get("layers") or {}).items():
            types = {kind: bool(layer.get(kind, False)) for kind in ("launch", "build", "cache")}
            layers[name] = Layer(name, types, layer.get("data") or {}, layer.get("sha", ""))
    return layers


APP_REPOSITORY = "jemalloc-buildpack-cnb-app"
_leftovers_removed = False


def remove_leftover_images() -> None:
    """Remove the app images of harness processes that ended without removing them (once per
    process; the images of processes still running are left alone)."""
    global _leftovers_removed
    if _leftovers_removed:
        return
    _leftovers_removed = True
    listed = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", f"{APP_REPOSITORY}/*", check=False)
    stale = [image for image in listed.stdout.split()
             if not ((owner := image.split("/", 1)[1].split("-", 1)[0]).isdigit() and os.path.exists(f"/proc/{owner}"))]
    if stale:
        docker("image", "rm", "--force", *stale, check=False, timeout=120)


@dataclass
class CnbApp(AppWorkspace):
    """An app built by the real lifecycle into an image of its own, with its cache."""

    KIND = "cnb"
    _builds: int = 0

    # A cache to start from (a copy of another app's cache directory), instead of none.
    cache_from: Path | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.cache = self.workspace / "cache"
        if self.cache_from is not None:
            shutil.copytree(self.cache_from, self.cache, symlinks=True)
        else:
            self.cache.mkdir()
        # The app's image is REPOSITORY:latest; each build's image is also REPOSITORY:build-N,
        # so that it stays while tests launch it, whatever later builds do. All are removed at
        # cleanup; the repository names this process, for remove_leftover_images.
        remove_leftover_images()
        self.repository = f"{APP_REPOSITORY}/{os.getpid()}-{secrets.token_hex(4)}"
        self.image_name = f"{self.repository}:latest"
        self._tags: list[str] = []
        self.launch_cache = self.workspace / "launch-cache"
        self.launch_cache.mkdir()
        self.builder: Builder = builder(self.stack_images)

    def save_cache(self, name: str) -> Path:
        """A copy of the app's cache as it is now (for CnbApp(cache_from=...))."""
        copy = self.workspace / f"cache-{name}"
        shutil.copytree(self.cache, copy, symlinks=True)
        return copy

    @property
    def image_id(self) -> str | None:
        """The ID of the image the app's tag names now, None before a build exported one."""
        result = docker("image", "inspect", "--format", "{{.Id}}", self.image_name, check=False)
        return result.stdout.strip() if result.returncode == 0 else None

    # --- build ------------------------------------------------------------------------------

    def build(self, config: dict[str, str] | None = None, timeout: float = BUILD_TIMEOUT) -> CnbBuild:
        """The lifecycle's five phases on a fresh copy of the app, with CONFIG as the platform's
        env/ files (how Fir hands config vars to a build); exported as this app's image."""
        self._builds += 1
        root = self.workspace / f"build_{self._builds}"
        app_dir, layers_dir, platform = root / "workspace", root / "layers", root / "platform"
        shutil.copytree(APPS / self.source, app_dir, symlinks=True)
        layers_dir.mkdir()
        (platform / "env").mkdir(parents=True)
        for name, value in (config or {}).items():
            (platform / "env" / name).write_text(value)
        self._own(app_dir)
        self._own(layers_dir)

        ids = ["-uid", str(self.builder.uid), "-gid", str(self.builder.gid)]
        image = self.image_name
        phases: dict[str, Result] = {}
        seconds: dict[str, float] = {}
        steps = [
            ("analyzer", ["-daemon", "-layers", "/layers", "-launch-cache", "/launch-cache",
                          "-run-image", self.builder.run_image, *ids, image], True),
            ("detector", ["-app", "/workspace", "-layers", "/layers", "-platform", "/platform", "-log-level", "debug"], False),
            ("restorer", ["-daemon", "-layers", "/layers", "-cache-dir", "/cache", *ids], True),
            ("builder", ["-app", "/workspace", "-layers", "/layers", "-platform", "/platform"], False),
            ("exporter", ["-daemon", "-app", "/workspace", "-layers", "/layers", "-cache-dir", "/cache",
                          "-launch-cache", "/launch-cache", *ids, image], True),
        ]
        volumes = [f"{app_dir}:/workspace", f"{layers_dir}:/layers", f"{platform}:/platform:ro", f"{self.cache}:/cache",
                   f"{self.launch_cache}:/launch-cache"]
        engine = docker_socket(self.builder.uid, self.builder.gid)
        for name, args, as_root in steps:
            options = {"user": "root", "volumes": [*volumes, f"{engine}:{ENGINE_SOCKET}"]} if as_root else {
                "user": f"{self.builder.uid}:{self.builder.gid}", "volumes": volumes}
            started = time.monotonic()
            phases[name] = result = self._run_once(
                self.builder.image, f"/cnb/lifecycle/{name}", *args, kind=f"{name}",
                network="host" if name == "builder" else "none", env={"CNB_PLATFORM_API": PLATFORM_API},
                timeout=timeout if name == "builder" else PHASE_TIMEOUT, check=False, **options)
            seconds[name] = time.monotonic() - started
            if result.returncode != 0:
                break
        built = phases.get("builder")
        if built:
            compiles.record("cnb", self.stack.name, built.stdout, seconds["builder"])
        failed = next((result for result in phases.values() if result.returncode != 0), None)
        buildpacks_said, lifecycle_said = split_build_output(built.stdout) if built else ("", "")
        build = CnbBuild(
            failed.returncode if failed else 0, buildpacks_said,
            lifecycle_said + (built.stderr if built else (failed.output if failed else "")),
            phases, seconds, layers_dir,
        )
        if build.succeeded:
            build.image = f"{self.repository}:build-{self._builds}"
            docker("tag", image, build.image)
            self._tags.append(build.image)
            build.image_id = self.image_id
            build.layers = _image_layers(build.image_id)
        return build

    def damage_cache(self, path: str, layer: str = "jemalloc") -> None:
        """Append a byte to the file PATH of a cached layer, and record the damaged layer in the
        cache under its new digest, so that the lifecycle's own check of the cache (the digest
        of the layer's archive) passes and only the buildpack can see the damage: a cache that
        a faulty earlier build, or a faulty cache store, left consistent but wrong."""
        committed = self.cache / "committed"
        metadata_file = committed / "io.buildpacks.lifecycle.cache.metadata"
        metadata = json.loads(metadata_file.read_text())
        entry = next(bp for bp in metadata["buildpacks"] if bp["key"] == BUILDPACK_ID)["layers"][layer]
        old = committed / f"{entry['sha']}.tar"
        new = committed / "damaged.tar"
        target = f"layers/{BUILDPACK_LAYERS}/{layer}/{path}"
        with tarfile.open(old) as source, tarfile.open(new, "w", format=tarfile.PAX_FORMAT) as damaged:
            found = False
            for member in source.getmembers():
                data = source.extractfile(member).read() if member.isfile() else None
                if member.name.lstrip("/") == target:
                    data += b"\0"
                    member.size = len(data)
                    found = True
                damaged.addfile(member, None if data is None else io.BytesIO(data))
        assert found, f"no {target} in {old}"
        digest = "sha256:" + hashlib.sha256(new.read_bytes()).hexdigest()
        new.rename(committed / f"{digest}.tar")
        old.unlink()
        entry["sha"] = digest
        metadata_file.write_text(json.dumps(metadata))

    def forget_image(self) -> None:
        """Untag the app's image (each build's stays): the next build has no previous image."""
        docker("image", "rm", self.image_name, check=False)

    # --- launch -----------------------------------------------------------------------------

    def launch(self, build: CnbBuild, process_type: str | None = "web", config: dict[str, str] | None = None,
               command: str | None = None, before: str | None = None) -> Dyno:
        """A container of the app image, started as a Fir dyno: through the image's entrypoint
        for web, /cnb/process/<type> for another process type, `launcher COMMAND` for a one-off
        (what `heroku run:inside` and `heroku run:detached` start).

        The environment has the config vars and what Fir sets: DYNO as
        "<type>-<generated>-<generated>", PORT for web. BEFORE, a shell command, runs in the
        container before its entrypoint (to change the image's files on purpose)."""
        assert build.image_id is not None, "the build failed: nothing to launch"
        dyno_type = process_type or "run"
        environment = {"DYNO": f"{dyno_type}-{secrets.token_hex(5)[:9]}-{secrets.token_hex(3)[:5]}"}
        if dyno_type == "web":
            environment["PORT"] = "5000"
        environment.update(config or {})
        if command is not None:
            entry = ["/cnb/lifecycle/launcher", command]
        elif process_type == "web":
            entry = build.entrypoint()
        else:
            entry = [f"/cnb/process/{process_type}"]
        options: list[str] = []
        if before is not None:
            entry = ["bash", "-c", f'{before}\nexec "$@"', "before", *entry]
        if before is not None or command is not None or process_type != "web":
            options = ["--entrypoint", entry[0]]
            arguments = entry[1:]
        else:
            arguments = []
        return self._start_dyno(build.image_id, *arguments, own_dir=None, login=LOGIN, env=environment,
                                options=options)

    def run(self, build: CnbBuild, command: str, config: dict[str, str] | None = None,
            process_type: str | None = None, timeout: float = 120, before: str | None = None) -> Result:
        """A one-off process: COMMAND through `launcher`, as `heroku run:inside` starts it; its result."""
        return self._one_off(self.launch(build, process_type, config, command=command, before=before), timeout)

    def cleanup(self) -> None:
        super().cleanup()
        docker("image", "rm", "--force", self.image_name, *self._tags, check=False, timeout=120)
