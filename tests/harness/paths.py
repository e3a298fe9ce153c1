"""Where things are, in one place: this repository and the project's shared material on this
machine, the files the buildpack puts in a slug (as a dyno sees them under /app), and the
catalogue of offline jemalloc sources with the config vars that build one of them.

Tests, the harness, the demo and the benchmarks import these names rather than spell a path or
a tarball out again:

    REPO, SHARED, CACHE, MACHINE_CACHE,         this machine
    JEMALLOC_FIXTURES
    APP, APP_PREFIX, LIBRARY, LIBRARY_FILE,     the slug, as a dyno sees it (absolute, /app/...);
    BIN, WRAPPER, SHIM, BUILD_INFO              slug_relative() gives a path inside a build dir
    DEFAULT_VERSION, FIXTURE_TARBALLS,          the offline sources
    SNAPSHOT_CHECKSUM, fixture_path()
    source_config(server, version, fault, ...)  config vars that build a fixture from a SourceServer
    served_source_config(server, name, body)    config vars that build BODY, served as NAME
    lay_out_runtime(buildpack, root)            runtime/ laid out as a slug's vendor/jemalloc has it
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("JEMALLOC_BUILDPACK_SHARED", REPO.parent / "shared")).resolve()
# Downloads and logs of the harness itself; .gitignore'd.
CACHE = REPO / ".cache"
# What takes minutes to make and depends on nothing in the checkout (the CNB lifecycle, built
# from ../shared/cnb): kept for every checkout of this machine, so that a fresh clone (CI's)
# does not build it again. Outside any checkout, so never in the repo.
MACHINE_CACHE = Path(os.environ.get("JEMALLOC_BUILDPACK_MACHINE_CACHE", "/var/cache/jemalloc-buildpack-harness"))
JEMALLOC_FIXTURES = SHARED / "jemalloc" / "fixtures"

# --- the slug ---------------------------------------------------------------------------------
# A dyno has the compiled app at /app (HOME); bin/compile installs jemalloc under vendor/jemalloc.
APP = "/app"
APP_PREFIX = f"{APP}/vendor/jemalloc"
# What LD_PRELOAD names (a link), and the file it points to: what /proc/PID/maps shows mapped.
LIBRARY = f"{APP_PREFIX}/lib/libjemalloc.so"
LIBRARY_FILE = f"{APP_PREFIX}/lib/libjemalloc.so.2"
# On PATH in every dyno: jemalloc.sh (WRAPPER), jemalloc-check, jeprof.
BIN = f"{APP_PREFIX}/bin"
WRAPPER = f"{BIN}/jemalloc.sh"
# The profile.d script every dyno sources before its command.
SHIM = f"{APP}/.profile.d/jemalloc.sh"
# KEY=VALUE facts of the build, for jemalloc-check (harness.parsers.parse_build_info).
BUILD_INFO = f"{APP_PREFIX}/build-info"


def slug_relative(path: str) -> str:
    """PATH (one of the /app/... names above) relative to the app: its place in a build dir or slug."""
    if path == APP or not path.startswith(f"{APP}/"):
        raise ValueError(f"{path!r} is not a path under {APP}/")
    return path[len(APP) + 1:]


# --- the offline jemalloc sources (../shared/jemalloc/fixtures) -------------------------------
DEFAULT_VERSION = "5.3.0"
FIXTURE_TARBALLS = {
    "5.2.1": "jemalloc-5.2.1.tar.bz2",
    "5.3.0": "jemalloc-5.3.0.tar.bz2",
    "5.3.1": "jemalloc-5.3.1-git-snapshot.tar.gz",
}
# The 5.3.1 fixture is a git snapshot, not the release tarball, so its pinned checksum does not apply.
SNAPSHOT_CHECKSUM = "aac0e7afdbfb8abcbe7cab63597b63abacf22e8b701116a10a45b5ff50ac0c29"


def fixture_path(version: str = DEFAULT_VERSION) -> Path:
    """The fixture tarball of VERSION on this machine."""
    return JEMALLOC_FIXTURES / FIXTURE_TARBALLS[version]


def source_config(server, version: str = DEFAULT_VERSION, fault: str = "ok", **extra: str) -> dict[str, str]:
    """Config vars that make the buildpack take VERSION from the fixtures SERVER (a
    harness.sources.SourceServer) serves, with FAULT; EXTRA config vars are added last, so they
    may replace these."""
    values = {
        "JEMALLOC_VERSION": version,
        "JEMALLOC_SOURCE_URL": server.url(FIXTURE_TARBALLS[version], fault),
    }
    if version == "5.3.1":
        values["JEMALLOC_CHECKSUM"] = SNAPSHOT_CHECKSUM
    values.update(extra)
    return values


def served_source_config(server, name: str, body: bytes, version: str = DEFAULT_VERSION,
                         **extra: str) -> dict[str, str]:
    """Config vars that build BODY (a source tarball made by a test), which SERVER serves as
    NAME, as VERSION with its own checksum; EXTRA config vars are added last."""
    server.extra_files[name] = body
    values = {
        "JEMALLOC_VERSION": version,
        "JEMALLOC_SOURCE_URL": server.url(name),
        "JEMALLOC_CHECKSUM": hashlib.sha256(body).hexdigest(),
    }
    values.update(extra)
    return values


def lay_out_runtime(buildpack: Path, root: Path) -> Path:
    """The runtime scripts of the buildpack checkout BUILDPACK laid out under ROOT as
    lib/install.sh installs them in vendor/jemalloc: bin/, and beside it
    libexec/jemalloc-buildpack/ with the files they source. Returns ROOT/bin."""
    shutil.copytree(buildpack / "runtime" / "bin", root / "bin")
    if (buildpack / "runtime" / "lib").is_dir():  # an older checkout has none
        shutil.copytree(buildpack / "runtime" / "lib", root / "libexec" / "jemalloc-buildpack")
    return root / "bin"
