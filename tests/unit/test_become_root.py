"""The project's commands (scripts/demo, scripts/test, benchmarks/run) run as the README writes
them, without sudo: as another user they re-run themselves under sudo, keeping the settings
given in the environment, and without sudo they say in one line what to do. As root they go on
at once (CI runs scripts/test so, on a machine without sudo)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness.paths import REPO

COMMANDS = ["scripts/demo", "scripts/test", "benchmarks/run"]
# What the scripts use before they would need root.
TOOLS = ["bash", "env", "id", "dirname", "basename", "realpath", "cat"]
NOBODY = 65534


@pytest.fixture
def bin_dir():
    """A directory for the user's PATH that the unprivileged user can reach (pytest's tmp_path is
    private to root)."""
    with tempfile.TemporaryDirectory(prefix="become-root-") as directory:
        os.chmod(directory, 0o755)
        yield Path(directory)


def run_as_a_user(bin_dir: Path, command: list[str], with_sudo: bool) -> subprocess.CompletedProcess:
    """COMMAND as an unprivileged user, with a PATH of TOOLS and, WITH_SUDO, a sudo that prints
    how it was called and the STACKS it was given."""
    for tool in TOOLS:
        (bin_dir / tool).symlink_to(shutil.which(tool))
    if with_sudo:
        sudo = bin_dir / "sudo"
        sudo.write_text('#!/bin/bash\necho "sudo $* (STACKS=${STACKS-unset})"\n')
        sudo.chmod(0o755)
    drop = [] if os.getuid() != 0 else [shutil.which("setpriv"), f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return subprocess.run([*drop, *command], cwd=REPO, env={"PATH": str(bin_dir), "STACKS": "heroku-24"},
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_user_with_sudo_gets_the_command_rerun_under_sudo_with_its_arguments_and_settings(bin_dir, command):
    completed = run_as_a_user(bin_dir, [command, "--stack", "heroku-22", "a b"], with_sudo=True)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == (f"sudo --preserve-env=STACKS,JEMALLOC_BUILDPACK_MACHINE_CACHE {REPO / command} "
                                "--stack heroku-22 a b (STACKS=heroku-24)\n")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_user_without_sudo_is_told_in_one_line_to_run_it_as_root(bin_dir, command):
    completed = run_as_a_user(bin_dir, [command], with_sudo=False)
    # output::error's status, as the buildpack's own errors.
    assert completed.returncode == 97
    assert completed.stdout == ""
    name = command.rsplit("/", 1)[1]
    assert completed.stderr == (f" !     {name} needs root (it installs packages and starts a Docker engine), "
                                "and sudo is not installed: run it as root\n")

