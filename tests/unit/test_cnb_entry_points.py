"""bin/detect and bin/build called as the classic build system and the CNB lifecycle call them."""

import subprocess

from harness.paths import REPO


def run(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / "bin" / script), *args], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", **(env or {})})


def test_detect_answers_the_classic_build_system_with_the_buildpack_name(tmp_path):
    result = run("detect", str(tmp_path))
    assert (result.returncode, result.stdout, result.stderr) == (0, "jemalloc\n", "")


def test_detect_passes_silently_as_the_lifecycle_calls_it(tmp_path):
    # lifecycle v0.21 (Buildpack API 0.10): two arguments and the same two paths in the environment.
    platform, plan = str(tmp_path / "platform"), str(tmp_path / "plan.toml")
    for env in ({"CNB_PLATFORM_DIR": platform, "CNB_BUILD_PLAN_PATH": plan}, {}):
        result = run("detect", platform, plan, env=env)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), env
    result = run("detect", env={"CNB_PLATFORM_DIR": platform, "CNB_BUILD_PLAN_PATH": plan})
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_build_without_its_inputs_says_what_it_needs():
    result = run("build")
    assert result.returncode == 2 and "give LAYERS_DIR and PLATFORM_DIR" in result.stderr
