"""arm64: the configure flag that makes a build run on 64 KiB-page kernels, decided per version.

No arm64 machine is available here, so this checks the decision (build::page_size_flag, which
build::from_source adds to configure's flags) rather than a build on aarch64; the cache key names
the architecture (uname -m), so an arm64 build never reuses an amd64 one.
"""

import subprocess

import pytest

from harness.paths import JEMALLOC_FIXTURES, REPO


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
