"""The only way the harness talks to Docker: the docker CLI, every call with a timeout.

Every container the harness starts carries the label in LABEL, valued with the PID of the
harness process, so that what a crashed run left behind can be found and removed without
touching the containers of a run that is still going on (see remove_leftovers).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

LABEL_NAME = "io.jemalloc-buildpack.harness"
LABEL = f"{LABEL_NAME}={os.getpid()}"
DEFAULT_TIMEOUT = 120


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


def remove_leftovers() -> None:
    """Remove the containers of harness runs that ended without removing them."""
    listed = docker("ps", "--all", "--filter", f"label={LABEL_NAME}",
                    "--format", f'{{{{.ID}}}} {{{{.Label "{LABEL_NAME}"}}}}', check=False)
    for line in listed.stdout.splitlines():
        container_id, _, owner = line.partition(" ")
        if not (owner.isdigit() and os.path.exists(f"/proc/{owner}")):
            remove_container(container_id)
