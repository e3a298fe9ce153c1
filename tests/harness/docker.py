"""The only way the harness talks to Docker: the docker CLI, every call with a timeout.

Every container the harness starts carries the label in LABEL, valued with the PID of the
harness process, so that what a crashed run left behind can be found and removed without
touching the containers of a run that is still going on (see remove_leftovers).
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

LABEL_NAME = "io.jemalloc-buildpack.harness"
LABEL = f"{LABEL_NAME}={os.getpid()}"
DEFAULT_TIMEOUT = 120
# Docker's name for this machine's architecture.
HOST_ARCHITECTURE = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


class DockerError(RuntimeError):
    pass


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def docker(*args: str, timeout: float = DEFAULT_TIMEOUT, check: bool = True, input: str | None = None) -> Result:
    """Run `docker ARGS...` and return its output; raise DockerError on failure when check."""
    command = ["docker", *args]
    try:
        completed = subprocess.run(
            command,
            input=input,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as error:
        raise DockerError(f"timed out after {timeout}s: {' '.join(command)}") from error
    result = Result(command, completed.returncode, completed.stdout, completed.stderr)
    if check and result.returncode != 0:
        raise DockerError(
            f"exit {result.returncode}: {' '.join(command)}\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
        )
    return result


def image_label(image: str, label: str) -> str | None:
    """The value of a label of a local image, or None when the image or label is absent."""
    result = docker("image", "inspect", "--format", f'{{{{index .Config.Labels "{label}"}}}}', image, check=False)
    if result.returncode != 0:
        return None
    value = result.stdout.strip()
    return None if value in ("", "<no value>") else value


def image_exists(image: str) -> bool:
    return docker("image", "inspect", image, check=False).returncode == 0


def remove_container(name: str) -> None:
    docker("rm", "--force", "--volumes", name, check=False, timeout=60)


def env_options(environment: Mapping[str, str] | None) -> list[str]:
    """`docker run` options that set ENVIRONMENT in the container."""
    return [option for name, value in (environment or {}).items() for option in ("--env", f"{name}={value}")]


def container_name(kind: str) -> str:
    """A fresh name for a harness container of KIND (compile, report, dyno...)."""
    return f"jemalloc-buildpack-{kind}-{secrets.token_hex(4)}"


def image_platform(image: str) -> str | None:
    """An image's OS/ARCH ("linux/arm64"), None when there is no such image."""
    result = docker("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", image, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


# The CPU weight of a container under emulation, against docker's default of 1024. Every
# instruction of an arm64 container costs qemu-user ten or more on the host, so the arm64 tier is
# the run's longest path; at equal weight the stack tier's compiles beside it left an emulated
# jemalloc compile a sixth of its standalone speed (over an hour instead of 9 minutes).
EMULATED_CPU_SHARES = 4096

_architecture_options: dict[str, list[str]] = {}


def architecture_options(image: str) -> list[str]:
    """For an image of another architecture than the host's (the arm64 tier, run under
    qemu-user): `--platform OS/ARCH`, without which `docker run` warns on stderr, and the
    emulated container's CPU weight (EMULATED_CPU_SHARES). [] for the host's own."""
    if image not in _architecture_options:
        platform = image_platform(image)
        if platform is None:
            return []  # No such image (yet): `docker run` says so; nothing to remember.
        foreign = platform != f"linux/{HOST_ARCHITECTURE}"
        _architecture_options[image] = (["--platform", platform, "--cpu-shares", str(EMULATED_CPU_SHARES)]
                                        if foreign else [])
    return _architecture_options[image]


def image_id(image: str) -> str | None:
    """The ID of IMAGE (a tag), None when there is no such image."""
    result = docker("image", "inspect", "--format", "{{.Id}}", image, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def remove_replaced_image(previous_id: str | None) -> None:
    """Remove the image a tag named before its rebuild (PREVIOUS_ID, from image_id) once no tag
    names it, rather than let rebuilds fill the disk. Only that image: a `docker image prune`
    here would race with a build in another process, whose new image is untagged for a moment
    before it is tagged."""
    if previous_id is None:
        return
    tags = docker("image", "inspect", "--format", "{{len .RepoTags}}", previous_id, check=False)
    if tags.returncode == 0 and tags.stdout.strip() == "0":
        docker("image", "rm", previous_id, check=False, timeout=300)


def _run_options(name: str, network: str, user: str | None, env: Mapping[str, str] | None,
                 volumes: Sequence[str], workdir: str | None) -> list[str]:
    options = ["--name", name, "--label", LABEL, "--network", network]
    if user is not None:
        options += ["--user", user]
    if workdir is not None:
        options += ["--workdir", workdir]
    for volume in volumes:
        options += ["--volume", volume]
    return options + env_options(env)


def run_once(image: str, *command: str, network: str = "none", user: str | None = None,
             env: Mapping[str, str] | None = None, volumes: Sequence[str] = (), workdir: str | None = None,
             options: Sequence[str] = (), name: str | None = None, timeout: float = DEFAULT_TIMEOUT,
             check: bool = True) -> Result:
    """Run COMMAND in a labelled container of IMAGE once, wait for it, and remove it.

    NETWORK is docker's --network (none unless the command needs the source server);
    VOLUMES are --volume values ("HOST:CONTAINER[:ro]"), ENV the environment; OPTIONS more
    `docker run` options (--tmpfs, --env...). The container is named (NAME, or a fresh name) so
    that it is removed even when TIMEOUT stops the docker CLI, which --rm alone would not do.
    With CHECK, a non-zero exit status raises DockerError.
    """
    name = name or container_name("run")
    try:
        return docker("run", "--rm", *architecture_options(image), *_run_options(name, network, user, env, volumes, workdir),
                      *options, image, *command, check=check, timeout=timeout)
    finally:
        remove_container(name)


def start(image: str, *command: str, name: str, network: str = "none", env: Mapping[str, str] | None = None,
          volumes: Sequence[str] = (), workdir: str | None = None, options: Sequence[str] = ()) -> None:
    """Start COMMAND in a labelled container of IMAGE, detached, under docker's init (PID 1, as
    on a dyno); the caller removes it (remove_container(NAME))."""
    docker("run", "--detach", "--init", *architecture_options(image), *_run_options(name, network, None, env, volumes, workdir),
           *options, image, *command)


def remove_leftovers() -> None:
    """Remove the containers of harness runs that ended without removing them."""
    listed = docker("ps", "--all", "--filter", f"label={LABEL_NAME}",
                    "--format", f'{{{{.ID}}}} {{{{.Label "{LABEL_NAME}"}}}}', check=False)
    for line in listed.stdout.splitlines():
        container_id, _, owner = line.partition(" ")
        if not (owner.isdigit() and os.path.exists(f"/proc/{owner}")):
            remove_container(container_id)
