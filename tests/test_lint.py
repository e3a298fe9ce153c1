"""The buildpack's shell code stays shellcheck-clean (the runtime shim as POSIX sh)."""

import shutil
import subprocess

from harness.paths import REPO


def shell_scripts() -> list[str]:
    candidates = [*REPO.glob("bin/*"), *REPO.glob("lib/*.sh"), *REPO.glob("profile.d/*.sh"),
                  *REPO.glob("runtime/bin/*"), *REPO.glob("runtime/lib/*.sh"), *REPO.glob("scripts/*"), *REPO.glob("scripts/lib/*.sh"),
                  *REPO.glob("tests/stack-images/*.sh"), *REPO.glob("tests/apps/*/bin/*"), REPO / ".ci" / "run",
                  *REPO.glob("runtime/exec.d/*"), *REPO.glob("tests/buildpacks/*/bin/*"),
                  REPO / "benchmarks" / "run", REPO / "benchmarks" / "realapp" / "side-by-side"]
    return sorted(str(path.relative_to(REPO)) for path in candidates
                  if path.is_file() and path.read_text(errors="replace").startswith(("#!/usr/bin/env bash", "# shellcheck shell=sh")))


def test_every_shell_script_is_shellcheck_clean():
    assert shutil.which("shellcheck"), "shellcheck is not installed (scripts/test installs it)"
    scripts = shell_scripts()
    assert "profile.d/jemalloc.sh" in scripts and "bin/compile" in scripts
    result = subprocess.run(["shellcheck", "-x", *scripts], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_shell_script_has_the_one_format():
    """Tabs, case patterns indented under their case, POSIX sh where a file is sourced by any
    shell: the style .editorconfig sets for shfmt."""
    assert shutil.which("shfmt"), "shfmt is not installed (scripts/test installs it)"
    result = subprocess.run(["shfmt", "--diff", *shell_scripts()], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, "run shfmt --write on these files:\n" + result.stdout + result.stderr
