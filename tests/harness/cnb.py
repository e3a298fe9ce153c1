"""A small stand-in for a Cloud Native Buildpacks platform and lifecycle, for the tests only.

Neither pack nor the lifecycle's binaries can be fetched on the test machines, so this module
plays both, for what the jemalloc buildpack touches, following the Buildpack API 0.10
(buildpack.md) and Platform (platform.md) specifications of buildpacks.io; each rule cites its
section. It is not part of the buildpack, and it does not try to be a lifecycle: no OCI images,
no registry, no SBOM, one buildpack group made of this repository's buildpack.

    build:   detect -> analyze/restore -> build -> export, in the stack's build image with this
             buildpack in it (Dockerfile.test), as the image's user, with the app at /workspace
             and the layers at /layers, as on Heroku Fir. The "image" it exports and the cache
             are host directories of this CnbApp.
    launch:  the stack's run image, as its user, /layers and /workspace from the exported image,
             and the launcher (cnb-launcher, a bash script: the run images have no python) at
             /cnb/lifecycle/launcher with /cnb/process/<type> links to it.

The app's processes come from its Procfile, as Heroku's heroku/procfile buildpack would declare
them in launch.toml.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .app import APPS, AppWorkspace, BuildOutcome
from .docker import Result
from .dyno import Dyno
from .images import buildpack_image
from .paths import JEMALLOC_FIXTURES, REPO
from .sources import FIXTURES_MOUNT

BUILDPACK_MOUNT = "/tmp/buildpacks/jemalloc"
LAUNCHER = REPO / "tests" / "harness" / "cnb-launcher"
DESCRIPTOR = tomllib.loads((REPO / "buildpack.toml").read_text())
BUILDPACK_ID = DESCRIPTOR["buildpack"]["id"]
# buildpack.md "Build": each buildpack gets <layers>/<buildpack ID, '/' replaced by '_'>.
BUILDPACK_LAYERS = BUILDPACK_ID.replace("/", "_")
BUILD_TIMEOUT = 15 * 60
# Files of <layers>/<buildpack>/ that are not layer metadata (buildpack.md "Build", outputs).
NOT_LAYER_TOML = {"launch.toml", "build.toml", "store.toml"}
# The jemalloc layer as a launched process sees it: what the classic slug has under
# /app/vendor/jemalloc (harness.paths) is here.
LAYER = f"/layers/{BUILDPACK_LAYERS}/jemalloc"
# What LD_PRELOAD names (a link), and the file it points to: what /proc/PID/maps shows mapped.
LIBRARY = f"{LAYER}/tree/lib/libjemalloc.so"
LIBRARY_FILE = f"{LAYER}/tree/lib/libjemalloc.so.2"
BIN = f"{LAYER}/bin"
BUILD_INFO = f"{LAYER}/build-info"
# How a command runs as a process of the image does: through the launcher, by the shell.
LOGIN = ("/cnb/lifecycle/launcher",)


@dataclass
class Layer:
    """A layer as the export phase records it: its types, its metadata table, its digest."""

    name: str
    types: dict
    metadata: dict
    digest: str


@dataclass
class CnbBuild(BuildOutcome):
    """One build: the phases' results and, if it succeeded, the exported image's directory."""

    returncode: int
    stdout: str
    stderr: str
    detect: Result
    layers_dir: Path
    image: Path | None = None
    layers: dict[str, Layer] = field(default_factory=dict)

    def layer_path(self, name: str = "jemalloc") -> str:
        """Where a layer of this buildpack is in the build and launch containers."""
        return f"/layers/{BUILDPACK_LAYERS}/{name}"

    def build_info(self) -> dict[str, str]:
        """The facts the build recorded in its jemalloc layer (build-info); {} if none."""
        return self._build_info(self.layers_dir / "jemalloc" / "build-info")


def layer_digest(directory: Path) -> str:
    """A digest of a layer directory's files: paths, types, modes, contents and link targets.

    Stands in for the layer's diff ID (buildpack.md "Layer Types": a launch and cache layer is
    restored only if the digest recorded in the image matches the cache's).
    """
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(root) / name
            info = path.lstat()
            digest.update(f"{path.relative_to(directory)}\0{stat.S_IFMT(info.st_mode)}\0{info.st_mode & 0o7777}\0".encode())
            if stat.S_ISLNK(info.st_mode):
                digest.update(os.readlink(path).encode())
            elif stat.S_ISREG(info.st_mode):
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def toml_dump(table: dict) -> str:
    """TOML for a table of scalars and one level of sub-tables: all the layer metadata needs."""

    def scalar(value) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        text = str(value).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{text}"'

    lines = [f"{key} = {scalar(value)}" for key, value in table.items() if not isinstance(value, dict)]
    for key, value in table.items():
        if isinstance(value, dict):
            lines += ["", f"[{key}]", *(f"{k} = {scalar(v)}" for k, v in value.items() if not isinstance(v, dict))]
    return "\n".join(lines) + "\n"


def procfile_processes(app_dir: Path) -> dict[str, str]:
    procfile = app_dir / "Procfile"
    processes = {}
    if procfile.exists():
        for line in procfile.read_text().splitlines():
            name, sep, command = line.partition(":")
            if sep and name.strip() and not name.startswith("#"):
                processes[name.strip()] = command.strip()
    return processes


@dataclass
class CnbApp(AppWorkspace):
    """An app built and launched through the stand-in platform, with its image and cache."""

    _builds: int = 0
    KIND = "cnb"

    def __post_init__(self) -> None:
        super().__post_init__()
        # The platform's cache: <cache>/<layer>/ and <cache>/<layer>.json (types, metadata, digest).
        self.cache = self.workspace / "cache"
        self.cache.mkdir()
        # The last exported image, if any.
        self.image: Path | None = None
        self.image_layers: dict[str, Layer] = {}

    def _target_env(self) -> dict[str, str]:
        # buildpack.md (0.10) "Provided by the Lifecycle", "Targets": the target of the build.
        return {
            "CNB_TARGET_OS": "linux",
            "CNB_TARGET_ARCH": "amd64",
            "CNB_TARGET_DISTRO_NAME": "ubuntu",
            "CNB_TARGET_DISTRO_VERSION": self.stack.ubuntu_version,
        }

    # --- build ------------------------------------------------------------------------------

    def build(self, config: dict[str, str] | None = None, timeout: float = BUILD_TIMEOUT) -> CnbBuild:
        self._builds += 1
        root = self.workspace / f"build_{self._builds}"
        app_dir, layers_root, platform, plans = (root / "workspace", root / "layers", root / "platform", root / "plans")
        shutil.copytree(APPS / self.source, app_dir, symlinks=True)
        bp_layers = layers_root / BUILDPACK_LAYERS
        bp_layers.mkdir(parents=True)
        # platform.md "Inputs": user-provided environment variables as files in <platform>/env/.
        (platform / "env").mkdir(parents=True)
        for name, value in (config or {}).items():
            (platform / "env" / name).write_text(value)
        plans.mkdir()
        # buildpack.md "Buildpack Plan (TOML)": no buildpack required anything: no entries.
        (plans / "plan.toml").write_text("")
        self._restore(bp_layers)
        for path in (app_dir, layers_root, plans):
            self._own(path)

        volumes = [
            f"{app_dir}:/workspace",
            f"{layers_root}:/layers",
            f"{platform}:/platform:ro",
            f"{plans}:/cnb-plans",
            f"{JEMALLOC_FIXTURES}:{FIXTURES_MOUNT}:ro",
        ]
        # buildpack.md "Provided by the Platform": unless clear-env, user-provided variables are
        # also in the environment of bin/detect and bin/build.
        user_env = {} if DESCRIPTOR["buildpack"].get("clear-env") else dict(config or {})
        common_env = {"CNB_PLATFORM_DIR": "/platform", "CNB_BUILDPACK_DIR": BUILDPACK_MOUNT, **self._target_env()}

        def run(executable: str, env: dict[str, str], run_timeout: float) -> Result:
            return self._run_once(
                buildpack_image(self.stack_images), f"{BUILDPACK_MOUNT}/bin/{executable}", kind=executable,
                network="host", workdir="/workspace", volumes=volumes, env={**user_env, **common_env, **env},
                timeout=run_timeout, check=False,
            )

        # buildpack.md "Detection": no arguments (0.10); the plan is written to CNB_BUILD_PLAN_PATH;
        # exit status 0 passes, 100 fails, anything else is an error.
        detect = run("detect", {"CNB_BUILD_PLAN_PATH": "/cnb-plans/build-plan.toml"}, 60)
        if detect.returncode != 0:
            return CnbBuild(detect.returncode, detect.stdout, detect.stderr, detect, bp_layers)
        # buildpack.md "Build": no arguments (0.10); inputs CNB_LAYERS_DIR, CNB_PLATFORM_DIR and
        # CNB_BP_PLAN_PATH; working directory <app>. A non-zero exit status fails the build.
        built = run("build", {"CNB_LAYERS_DIR": f"/layers/{BUILDPACK_LAYERS}", "CNB_BP_PLAN_PATH": "/cnb-plans/plan.toml"},
                    timeout)
        build = CnbBuild(built.returncode, built.stdout, built.stderr, detect, bp_layers)
        if build.succeeded:
            self._export(build, app_dir, bp_layers)
        return build

    def _restore(self, bp_layers: Path) -> None:
        """Analysis and restore (buildpack.md "Phase #2: Analysis", "Layer Types").

        launch and cache: metadata from the image, contents from the cache, both only if the
        digest recorded in the image matches the cache's. launch only: metadata from the image,
        no contents. cache only: both from the cache. The [types] table is never restored.
        """
        cached = {path.stem: tomllib.loads(path.read_text()) for path in self.cache.glob("*.toml")}
        for name, layer in self.image_layers.items():
            entry = cached.get(name)
            if layer.types.get("cache"):
                if entry is None or entry["digest"] != layer.digest:
                    continue
                shutil.copytree(self.cache / name, bp_layers / name, symlinks=True)
            (bp_layers / f"{name}.toml").write_text(toml_dump({"metadata": layer.metadata}))
        for name, entry in cached.items():
            if not entry["types"].get("launch") and entry["types"].get("cache"):
                shutil.copytree(self.cache / name, bp_layers / name, symlinks=True)
                (bp_layers / f"{name}.toml").write_text(toml_dump({"metadata": entry.get("metadata", {})}))

    def _export(self, build: CnbBuild, app_dir: Path, bp_layers: Path) -> None:
        """Export (buildpack.md "Phase #4: Export", "Launch Layers", "Cached Layers", "Ignored Layers")."""
        layers: dict[str, Layer] = {}
        for toml in sorted(bp_layers.glob("*.toml")):
            if toml.name in NOT_LAYER_TOML:
                continue
            content = tomllib.loads(toml.read_text())
            types = {key: bool(content.get("types", {}).get(key, False)) for key in ("launch", "build", "cache")}
            directory = bp_layers / toml.stem
            if not any(types.values()):
                # An ignored layer: renamed <layer>.ignore, in no image and no cache.
                if directory.exists():
                    directory.rename(directory.with_name(f"{toml.stem}.ignore"))
                continue
            digest = layer_digest(directory) if directory.is_dir() else None
            if digest is None and types["launch"]:
                # launch = true and no directory: the previous image's layer is reused.
                previous = self.image_layers.get(toml.stem)
                assert previous is not None, f"layer {toml.stem} has no directory and no previous layer"
                digest = previous.digest
            layers[toml.stem] = Layer(toml.stem, types, content.get("metadata", {}), digest)

        image = self.workspace / f"image_{self._builds}"
        image_layers = image / "layers" / BUILDPACK_LAYERS
        image_layers.mkdir(parents=True)
        for name, layer in layers.items():
            if layer.types["launch"]:
                source = bp_layers / name if (bp_layers / name).is_dir() else self.image / "layers" / BUILDPACK_LAYERS / name
                shutil.copytree(source, image_layers / name, symlinks=True)
        shutil.copytree(app_dir, image / "workspace", symlinks=True)
        # The cache keeps the cache = true layers of this build only.
        for old in self.cache.iterdir():
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        for name, layer in layers.items():
            if layer.types["cache"] and (bp_layers / name).is_dir():
                shutil.copytree(bp_layers / name, self.cache / name, symlinks=True)
                (self.cache / f"{name}.toml").write_text(
                    toml_dump({"digest": layer.digest, "types": layer.types, "metadata": layer.metadata}))
        self.image = image
        self.image_layers = layers
        build.image = image
        build.layers = layers

    # --- launch -----------------------------------------------------------------------------

    def launch(self, build: CnbBuild, process_type: str | None = "web", config: dict[str, str] | None = None,
               command: str | None = None, prepare: Callable[[Path], None] | None = None) -> Dyno:
        """Start a container of the image: a process type, or COMMAND through the launcher.

        The environment has the config vars and what Heroku Fir sets: DYNO as
        "<type>-<generated>-<generated>", PORT for web. PREPARE, if given, is called with the
        directory of this launch's copy of the image (layers/, workspace/) before the launch, to
        change it on purpose.
        """
        assert build.image is not None, "the build failed: nothing to launch"
        copy = self.workspace / f"launch_{secrets.token_hex(6)}"
        shutil.copytree(build.image, copy, symlinks=True)
        config_dir = copy / "layers" / "config"
        (config_dir / "process").mkdir(parents=True)
        (config_dir / "buildpacks").write_text(BUILDPACK_LAYERS + "\n")
        processes = procfile_processes(copy / "workspace")
        for name, process_command in processes.items():
            (config_dir / "process" / name).write_text(process_command)
        cnb = copy / "cnb"
        (cnb / "lifecycle").mkdir(parents=True)
        (cnb / "process").mkdir()
        shutil.copy2(LAUNCHER, cnb / "lifecycle" / "launcher")
        for name in processes:
            (cnb / "process" / name).symlink_to("/cnb/lifecycle/launcher")
        if prepare is not None:
            prepare(copy)
        self._own(copy / "layers")
        self._own(copy / "workspace")

        dyno_type = process_type or "run"
        environment = {"DYNO": f"{dyno_type}-{secrets.token_hex(5)}-{secrets.token_hex(3)[:5]}"}
        if dyno_type == "web":
            environment["PORT"] = "5000"
        environment.update(config or {})
        if command is None:
            assert process_type in processes, f"no process type {process_type!r} in {processes}"
            entry = [f"/cnb/process/{process_type}"]
        else:
            entry = ["/cnb/lifecycle/launcher", command]
        return self._start_dyno(
            self.stack_images.run, *entry[1:], own_dir=copy, login=LOGIN, env=environment, workdir="/workspace",
            volumes=[f"{copy / 'layers'}:/layers", f"{copy / 'workspace'}:/workspace", f"{cnb}:/cnb:ro"],
            options=["--entrypoint", entry[0]],
        )

    def run(self, build: CnbBuild, command: str, config: dict[str, str] | None = None,
            process_type: str | None = None, timeout: float = 120,
            prepare: Callable[[Path], None] | None = None) -> Result:
        """A one-off process (`heroku run` on Fir): COMMAND through the launcher; its result."""
        return self._one_off(self.launch(build, process_type, config, command=command, prepare=prepare), timeout)
