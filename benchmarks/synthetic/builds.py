"""The compiles the dynos run, and what they cost: cold and warm compile times, slug bytes added."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

from harness.app import App, Build
from harness.paths import FIXTURE_TARBALLS

from common.compile import fixture_config, timed_compile
from common.errors import BenchmarkError

from .results import BuildFigures

# What the buildpack adds to the slug.
ADDED = ["vendor/jemalloc", ".profile.d/jemalloc.sh"]


def tree_bytes(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(entry.lstat().st_size for entry in path.rglob("*"))


def compressed_bytes(root: Path, relatives: list[str]) -> int:
    """What these paths weigh in a gzipped tarball, as Heroku counts a slug's size."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for relative in relatives:
            archive.add(root / relative, arcname=relative)
    return len(buffer.getvalue())


def parse_build_info(text: str) -> dict[str, str]:
    """The KEY=VALUE lines of vendor/jemalloc/build-info."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def build_info(build: Build) -> dict[str, str]:
    """The facts the buildpack recorded in the slug (vendor/jemalloc/build-info), if it did."""
    info = build.path("vendor/jemalloc/build-info")
    return parse_build_info(info.read_text()) if info.exists() else {}


def make_seconds(output: str) -> int | None:
    """The buildpack's own account of a cold build ("Built in N s"): the make of jemalloc."""
    built = re.search(r"Built in (\d+) s", output)
    return int(built[1]) if built else None


def measure_builds(app: App, version: str, stock: bool) -> tuple[dict[str, Build], BuildFigures]:
    """The builds the dynos run (keyed by common.configs.BUILDS's names), and the build figures.

    Cold and warm compile of the buildpack's default build, what it adds to the slug, and, with
    STOCK, a cold compile of the JEMALLOC_TUNING=none build too.
    """
    builds = {}
    stock_seconds = None
    with fixture_config(app, version) as config:
        cold, cold_seconds = timed_compile(app, config, "default", "cold compile")
        builds["default"], warm_seconds = timed_compile(app, config, "default", "warm compile")
        if stock:
            builds["stock"], stock_seconds = timed_compile(app, config, "stock", "compile with JEMALLOC_TUNING=none")
    warm = builds["default"]
    figures = BuildFigures(
        jemalloc_version=version,
        source=FIXTURE_TARBALLS[version],
        cold_compile_seconds=round(cold_seconds, 2),
        jemalloc_build_seconds=make_seconds(cold.output),
        warm_compile_seconds=round(warm_seconds, 2),
        warm_compile_used_cache="Using cached build" in warm.output,
        slug_bytes_added=sum(tree_bytes(warm.path(relative)) for relative in ADDED),
        slug_bytes_added_compressed=compressed_bytes(warm.build_dir, ADDED),
        default_build_info=build_info(warm),
        cold_compile_output=cold.output,
        warm_compile_output=warm.output,
    )
    if stock:
        info = build_info(builds["stock"])
        if info.get("default_malloc_conf"):
            raise BenchmarkError(f"the JEMALLOC_TUNING=none build has compiled-in defaults: {info}")
        figures.stock_compile_seconds = round(stock_seconds, 2)
        figures.stock_build_info = info
    return builds, figures
