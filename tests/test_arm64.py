"""arm64, where Fir runs its dynos: the buildpack built by the arm64 lifecycle and run on an
emulated arm64 machine, and the configure flag that makes a build run on 64 KiB-page kernels,
decided per version.

The cache key names the architecture (uname -m), so an arm64 build never reuses an amd64 one.
qemu-user shows programs the host's 4 KiB pages: a 64 KiB-page kernel is not emulated here, so
for that the flag's decision is what is tested.
"""

import re
import struct
import subprocess
import time
from pathlib import Path

import pytest

from harness import images
from harness.cnb import LIBRARY, LIBRARY_FILE, CnbApp
from harness.docker import image_platform, run_once
from harness.lifecycle import BUILDPACK_ID, PROCFILE_BUILDPACK
from harness.paths import DEFAULT_VERSION, JEMALLOC_FIXTURES, REPO
from harness.stacks import ARM64_STAND_IN
from test_background_thread import FORKING_COMMAND, SETTLE_SECONDS, has_background_thread
from test_cnb import assert_metrics_from_every_process


def page_size_flag(version: str, arch: str) -> str:
    result = subprocess.run(
        ["bash", "-c", 'source lib/build.sh && build::page_size_flag "$1" "$2"', "check", version, arch],
        cwd=REPO, capture_output=True, text=True, timeout=30, check=True)
    return result.stdout.strip()


@pytest.mark.parametrize("arch", ["aarch64", "arm64"])
@pytest.mark.parametrize("version", ["3.6.0", "4.5.0", "5.2.1", "5.3.0"])
def test_releases_before_5_3_1_get_64_kib_pages_on_arm64(version, arch):
    assert page_size_flag(version, arch) == "--with-lg-page=16"


@pytest.mark.parametrize("version", ["5.3.1", "5.3.10", "6.0.0"])
def test_5_3_1_and_later_choose_64_kib_pages_on_aarch64_themselves(version):
    assert page_size_flag(version, "aarch64") == ""
    # What makes the flag unneeded there: 5.3.1's configure defaults to 16 on aarch64 Linux.
    snapshot = JEMALLOC_FIXTURES / "jemalloc-5.3.1-git-snapshot.tar.gz"
    listing = subprocess.run(["tar", "-xzOf", str(snapshot), "--wildcards", "*/configure.ac"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    aarch64 = listing[listing.index("aarch64-unknown-linux-*)"):][:200]
    assert "LG_PAGE=16" in aarch64


@pytest.mark.parametrize("version", ["5.2.1", "5.3.0", "5.3.1"])
def test_amd64_builds_keep_the_detected_page_size(version):
    assert page_size_flag(version, "x86_64") == ""


# --- an emulated arm64 machine --------------------------------------------------------------
#
# Fir's dynos are arm64. Ubuntu's arm64 archive cannot be reached here, so these run on Debian
# trixie for arm64 (harness.stacks.ARM64_STAND_IN, with heroku-26's packages that Debian has),
# every program under qemu-user (binfmt_misc: scripts/lib/environment.sh registers it). A
# jemalloc compile there takes 25 to 36 minutes on 2 cores (a native one: about one), so the
# app is built once, the way Fir builds it (the CNB, through the arm64 lifecycle), and every
# test below looks at that one build. Heroku's classic platform has no arm64 dynos; bin/compile
# runs the same build code (lib/pipeline.sh, lib/build.sh) that the CNB build runs here.

ENABLED = {"JEMALLOC_ENABLED": "true"}
EMULATED_BUILD_TIMEOUT = 60 * 60
EMULATED_START_TIMEOUT = 180
AARCH64_MACHINE = 0xB7  # e_machine of an ELF file for aarch64 (EM_AARCH64)
BINFMT = Path("/proc/sys/fs/binfmt_misc")


def elf_machine(path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{path} is not an ELF file"
    return struct.unpack("<H", header[18:20])[0]


def reported_version(stdout: str) -> str:
    match = re.search(r"^jemalloc version \(\w+\): (.*)$", stdout, re.MULTILINE)
    assert match, f"the probe printed no version line:\n{stdout}"
    return match[1]


def emulation_is_registered() -> bool:
    """Whether the kernel runs aarch64 programs through an emulator that works in containers
    (an enabled binfmt_misc entry for aarch64 ELF files with the F flag)."""
    for entry in BINFMT.glob("*"):
        if entry.name in ("register", "status"):
            continue
        text = entry.read_text()
        if text.startswith("enabled") and "7f454c460201010000000000000000000200b700" in text and \
                re.search(r"^flags: \w*F", text, re.MULTILINE):
            return True
    return False


@pytest.fixture(scope="module")
def arm64_images():
    if not emulation_is_registered():
        pytest.fail("aarch64 programs cannot run here: no binfmt_misc entry with the F flag for qemu-aarch64-static."
                    " scripts/test registers one (scripts/lib/environment.sh: environment::enable_arm64_emulation).")
    return images.ensure(ARM64_STAND_IN)


@pytest.fixture(scope="module")
def arm64_app(arm64_images, source_config):
    """The sample app built once by the arm64 lifecycle in a builder image of the arm64 stand-in
    (the default version), exported as an arm64 app image."""
    with CnbApp(arm64_images) as app:
        build = app.build(source_config(), timeout=EMULATED_BUILD_TIMEOUT)
        assert build.succeeded, build.output
        yield app, build


def test_the_images_are_debian_trixie_for_arm64(arm64_images):
    for image in (arm64_images.run, arm64_images.build):
        assert image_platform(image) == "linux/arm64", image
    release = run_once(arm64_images.run, "bash", "-c", "uname -m; . /etc/os-release; echo $ID $VERSION_ID")
    assert release.stdout.split() == ["aarch64", "debian", "13"]


def test_the_arm64_lifecycle_builds_an_aarch64_layer_and_an_arm64_image(arm64_app):
    _, build = arm64_app
    assert build.group() == [BUILDPACK_ID, PROCFILE_BUILDPACK]
    lines = build.stdout.splitlines()
    assert lines and all(line.startswith(("-----> ", "       ")) for line in lines), build.stdout
    assert elf_machine(build.layer_files() / "tree/lib/libjemalloc.so.2") == AARCH64_MACHINE
    assert build.build_info()["version"] == DEFAULT_VERSION
    assert image_platform(build.image) == "linux/arm64"


def test_the_library_is_built_for_64_kib_pages(arm64_app):
    # 5.3.0 would take the build machine's page size: built for 64 KiB pages, it also runs on
    # kernels with 16 or 64 KiB pages (build::page_size_flag). jemalloc's statistics say which.
    app, build = arm64_app
    result = app.run(build, "MALLOC_CONF=stats_print:true bash -c : 2>&1 >/dev/null | grep -m1 'Page size'", ENABLED,
                     timeout=EMULATED_START_TIMEOUT)
    assert result.stdout.split() == ["Page", "size:", "65536"], result.output


def test_a_web_process_and_its_child_run_on_jemalloc(arm64_app):
    app, build = arm64_app
    process = app.launch(build, "web", ENABLED)
    process.wait_for_output("ready", timeout=EMULATED_START_TIMEOUT)
    main, child = process.probe_processes()
    assert process.mapped_files(main) == {LIBRARY_FILE}
    assert process.mapped_files(child) == {LIBRARY_FILE}
    stdout, stderr = process.logs()
    assert reported_version(stdout).startswith(f"{DEFAULT_VERSION}-0-g")
    assert stderr == ""
    # As `heroku run:inside <dyno> -- jemalloc-check --all` runs it: `launcher <cmd>` in the dyno.
    said = process.check()
    assert said.returncode == 0, said.stderr
    assert said["active"] is True
    assert (said["ld_preload"], said["mapped"]) == (LIBRARY, LIBRARY_FILE)
    assert said["library_version"].startswith(f"{DEFAULT_VERSION}-0-g")
    processes = process.processes()
    every = process.check("--all")
    assert every.returncode == 0, every.stderr
    assert [entry["pid"] for entry in every["processes"]] == [listed.pid for listed in processes]
    for entry, listed in zip(every["processes"], processes):
        assert (entry["comm"], entry["jemalloc"], entry["mapped"]) == (listed.name, True, LIBRARY_FILE), entry


def test_a_forked_child_gets_the_background_thread(arm64_app):
    app, build = arm64_app
    process = app.launch(build, None, ENABLED, command=FORKING_COMMAND)
    process.wait_for_output("ready", timeout=EMULATED_START_TIMEOUT)
    time.sleep(SETTLE_SECONDS * 2)
    main = process.main_process()
    (child,) = [listed for listed in process.children(main) if listed.name == "bash"]
    assert has_background_thread(process, main.pid) is True
    assert has_background_thread(process, child.pid) is True


def test_metrics_come_from_the_web_process_and_its_child(arm64_app):
    app, build = arm64_app
    process = app.launch(build, "web", {**ENABLED, "JEMALLOC_METRICS": "1"})
    process.wait_for_output("ready", timeout=EMULATED_START_TIMEOUT)
    assert_metrics_from_every_process(process, seconds=6)


def test_a_one_off_says_jemalloc_is_on(arm64_app):
    app, build = arm64_app
    checked = app.run(build, "jemalloc-check", ENABLED, timeout=EMULATED_START_TIMEOUT)
    assert checked.returncode == 0, checked.output
    assert checked.stdout.splitlines()[0] == "jemalloc is on: JEMALLOC_ENABLED=true"
