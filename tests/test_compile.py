"""bin/compile builds the chosen jemalloc from verified source, caches it, and installs it."""

import re

import pytest

from harness.compiles import BUILDING
from harness.faults import mini_config, mini_source
from harness.paths import APP_PREFIX, LIBRARY, LIBRARY_FILE, SHIM, WRAPPER
from harness.stacks import BUILD_LOGIC_STACKS


def cache_entries(app) -> list[str]:
    """The entries of the app's build cache (not the hidden ones of a build in progress)."""
    builds = app.cache_dir / "jemalloc" / "builds"
    if not builds.is_dir():
        return []
    return sorted(entry.name for entry in builds.iterdir() if not entry.name.startswith("."))


def reported_version(app, build) -> str:
    result = app.run(build, "bin/probe & sleep 5; kill %1", {"JEMALLOC_ENABLED": "true"})
    match = re.search(r"^jemalloc version \(\w+\): (.*)$", result.stdout, re.MULTILINE)
    assert match, result.output
    assert result.stderr == ""
    return match[1]


def test_detect_accepts_any_app_and_release_prints_valid_yaml(built_app):
    _, build = built_app
    assert build.detect_output.strip() == "jemalloc"
    assert build.release == {"addons": [], "default_process_types": {}}


def test_compile_installs_the_library_the_shim_and_the_wrapper(built_app, stack):
    _, build = built_app
    assert build.path(LIBRARY).resolve() == build.path(LIBRARY_FILE).resolve()
    assert build.path(SHIM).is_file()
    assert build.path(WRAPPER).stat().st_mode & 0o111
    assert build.path(f"{APP_PREFIX}/bin/jeprof").is_file()
    # Only what a dyno needs: no static library, headers or docs.
    assert not list(build.path(APP_PREFIX).rglob("*.a"))
    assert not build.path(f"{APP_PREFIX}/include").exists()
    assert not build.path(f"{APP_PREFIX}/share").exists()
    # Built by the stack's own user: on heroku-24 that is `heroku`, without root.
    assert build.path(LIBRARY_FILE).stat().st_uid == stack.default_uid


def test_the_library_is_stripped_of_debug_symbols(built_app):
    _, build = built_app
    library = build.path(LIBRARY_FILE).read_bytes()
    assert b".debug_info" not in library


def test_compile_output_follows_heroku_conventions(built_app):
    _, build = built_app
    lines = build.stdout.splitlines()
    assert lines and all(line.startswith(("-----> ", "       ")) for line in lines), build.stdout
    assert build.stderr == ""


def test_report_describes_the_last_build(built_app):
    app, _ = built_app
    facts = app.report()
    assert facts["jemalloc_version"] == "5.3.0"
    assert facts["source_sha256"] == "2db82d1e7119df3e71b7640219b6dfe84789bc0537983c3b7ac4f7189aecfeaa"
    assert "build_seconds" in facts and "cache_hit" in facts


def test_a_second_compile_is_a_cache_hit_that_downloads_and_builds_nothing(built_app, source_config, source_server):
    app, first = built_app
    config = source_config()
    requests_before = source_server.requests_for(config["JEMALLOC_SOURCE_URL"])
    again = app.compile(config)
    assert again.succeeded, again.output
    assert source_server.requests_for(config["JEMALLOC_SOURCE_URL"]) == requests_before
    assert "cached build" in again.stdout.lower()
    assert "Building" not in again.stdout
    assert len(again.stdout.splitlines()) <= 5, again.stdout
    assert again.path(LIBRARY_FILE).read_bytes() == first.path(LIBRARY_FILE).read_bytes()
    assert app.report()["cache_hit"] is True


def test_a_changed_version_is_a_cache_miss_and_runs_that_version(built_app, source_config):
    app, _ = built_app
    entries_before = cache_entries(app)
    build = app.compile(source_config("5.2.1"))
    assert build.succeeded, build.output
    assert "cached build" not in build.stdout.lower()
    assert len(cache_entries(app)) == len(entries_before) + 1
    assert reported_version(app, build).startswith("5.2.1-0-g")
    assert app.report()["cache_hit"] is False


def test_the_git_snapshot_of_5_3_1_is_built_with_autoconf_and_runs(built_app, source_config):
    app, _ = built_app
    build = app.compile(source_config("5.3.1"))
    assert build.succeeded, build.output
    assert reported_version(app, build).startswith("5.3.1-0-g81034ce")


def test_a_changed_checksum_is_a_cache_miss(built_app, source_config, source_server):
    app, _ = built_app
    entries_before = cache_entries(app)
    config = source_config(JEMALLOC_CHECKSUM="0" * 64)
    requests_before = source_server.requests_for(config["JEMALLOC_SOURCE_URL"])
    build = app.compile(config)
    # Not served from the 5.3.0 entry: downloaded again, and rejected by the new checksum.
    assert source_server.requests_for(config["JEMALLOC_SOURCE_URL"]) == requests_before + 1
    assert not build.succeeded
    assert cache_entries(app) == entries_before


# The cache's own logic: what is compiled does not matter, so these build the mini source
# (harness.faults), which goes through every step of a real build in a second.

def built_key(build) -> str:
    match = BUILDING.search(build.stdout)
    assert match, build.output
    return match[2]


@pytest.mark.stacks(*BUILD_LOGIC_STACKS)
def test_a_corrupted_cache_entry_is_detected_and_rebuilt(app, source_server):
    config = mini_config(source_server)
    first = app.compile(config)
    assert first.succeeded, first.output
    built = first.path(LIBRARY_FILE).read_bytes()
    (cached,) = [path for path in (app.cache_dir / "jemalloc" / "builds").rglob("libjemalloc.so.2")
                 if not path.is_symlink()]
    cached.write_bytes(b"not a library")
    build = app.compile(config)
    assert build.succeeded, build.output
    assert "damaged" in build.stdout
    assert built_key(build) == built_key(first)
    assert build.path(LIBRARY_FILE).read_bytes() == built
    # The rebuild replaced the damaged entry: the next build is served from it.
    again = app.compile(config)
    assert "Using cached build" in again.stdout, again.output
    assert again.path(LIBRARY_FILE).read_bytes() == built


@pytest.mark.stacks(*BUILD_LOGIC_STACKS)
def test_cache_entries_for_other_keys_do_not_pile_up(app, source_server):
    # Four sources, four cache keys, one after another in the same app.
    configs = [mini_config(source_server, mini_source(padding_kib=kib)) for kib in (1, 2, 3, 4)]
    keys = []
    for config in configs:
        build = app.compile(config)
        assert build.succeeded, build.output
        keys.append(built_key(build))
    # The entry just built and the two used most recently before it are kept; the oldest is gone.
    assert [key for key in keys if any(entry.startswith(key) for entry in cache_entries(app))] == keys[1:]
    assert len(cache_entries(app)) == 3
    assert "Using cached build" in app.compile(configs[1]).stdout
    assert "Building jemalloc" in app.compile(configs[0]).stdout


def test_ld_preload_never_reaches_the_build_of_the_next_buildpack(built_app, source_config):
    app, _ = built_app
    build = app.compile(source_config(), next_buildpack='echo "LD_PRELOAD=${LD_PRELOAD-unset}"; gcc --version >/dev/null && echo gcc-ok')
    assert build.succeeded, build.output
    assert build.next_buildpack_output == "LD_PRELOAD=unset\ngcc-ok\n"
