"""Bad input and faults fail the build with a clear error and leave nothing behind."""

import hashlib

import pytest

from harness.faults import repacked_release
from harness.paths import APP_PREFIX, FIXTURE_TARBALLS, SHIM, fixture_path, served_source_config
from harness.stacks import BUILD_LOGIC_STACKS

PINNED_5_3_0 = "2db82d1e7119df3e71b7640219b6dfe84789bc0537983c3b7ac4f7189aecfeaa"


def assert_failed_cleanly(app, build) -> str:
    """The build failed, said why on stderr in Heroku's error style, and left nothing behind."""
    assert not build.succeeded
    assert build.stderr.startswith(" !     "), build.output
    assert not build.path(APP_PREFIX).exists()
    assert not build.path(SHIM).exists()
    builds = app.cache_dir / "jemalloc" / "builds"
    assert not builds.is_dir() or not any(builds.iterdir()), list(builds.iterdir())
    return build.stderr


def test_an_unknown_version_lists_the_available_ones(app, source_config):
    stderr = assert_failed_cleanly(app, app.compile(source_config(JEMALLOC_VERSION="5.9.9")))
    assert "5.9.9" in stderr
    for version in ("3.6.0", "5.2.1", "5.3.0", "5.3.1"):
        assert version in stderr
    assert "JEMALLOC_CHECKSUM" in stderr


@pytest.mark.parametrize("version", ["latest", "5.3", "5.3.0; rm -rf /"])
def test_a_malformed_version_is_rejected(app, source_config, version):
    stderr = assert_failed_cleanly(app, app.compile(source_config(JEMALLOC_VERSION=version)))
    assert version in stderr
    assert "5.3.0" in stderr


def test_a_checksum_mismatch_names_both_sums(app, source_config):
    build = app.compile(source_config(fault="wrong-body"))
    stderr = assert_failed_cleanly(app, build)
    actual = hashlib.sha256(bytes(reversed(fixture_path("5.3.0").read_bytes()))).hexdigest()
    assert PINNED_5_3_0 in stderr
    assert actual in stderr


def test_a_malformed_checksum_is_rejected(app, source_config):
    stderr = assert_failed_cleanly(app, app.compile(source_config(JEMALLOC_CHECKSUM="abc123")))
    assert "JEMALLOC_CHECKSUM" in stderr


# A 404 will not get better: asked once. A 500 or a cut-off download may: asked three times.
@pytest.mark.parametrize(("fault", "requests", "status"), [
    ("404", 1, "404"),
    ("500", 3, "500"),
    ("truncated", 3, None),
])
def test_a_failed_download_names_the_url_and_is_retried_only_if_it_may_succeed(app, source_config, source_server,
                                                                                fault, requests, status):
    config = source_config(fault=fault)
    requests_before = source_server.requests_for(config["JEMALLOC_SOURCE_URL"])
    stderr = assert_failed_cleanly(app, app.compile(config))
    assert config["JEMALLOC_SOURCE_URL"] in stderr
    if status:
        assert status in stderr
    assert source_server.requests_for(config["JEMALLOC_SOURCE_URL"]) == requests_before + requests


def test_a_stalled_download_times_out(app, source_config, source_server):
    config = source_config(fault="slow", JEMALLOC_DOWNLOAD_TIMEOUT="3")
    build = app.compile(config, timeout=120)
    stderr = assert_failed_cleanly(app, build)
    assert config["JEMALLOC_SOURCE_URL"] in stderr
    assert "JEMALLOC_DOWNLOAD_TIMEOUT" in stderr


def test_an_unsupported_url_scheme_is_rejected(app, source_config):
    stderr = assert_failed_cleanly(app, app.compile(source_config(JEMALLOC_SOURCE_URL="ftp://example.invalid/x.tar.bz2")))
    assert "JEMALLOC_SOURCE_URL" in stderr


def test_a_file_url_works_like_an_http_one(app, source_config, source_server):
    # Fails at the checksum only because the version is 5.2.1's and the file 5.3.0's: the file
    # itself was read, which is what the file:// path has to prove (no second build needed).
    config = source_config("5.2.1", JEMALLOC_SOURCE_URL=source_server.file_url(FIXTURE_TARBALLS["5.3.0"]))
    stderr = assert_failed_cleanly(app, app.compile(config))
    assert PINNED_5_3_0 in stderr


def not_c(member, data):
    """src/jemalloc.c with a C syntax error in it; every other member as it is."""
    return b"this is not C;\n" + data if member.name.endswith("/src/jemalloc.c") else data


# What a failed make shows is the buildpack's bash (its log's tail on stderr, nothing left
# behind), not the stack's: see BUILD_LOGIC_STACKS. Each stack's compiler is tested by the
# builds that succeed on it.
@pytest.mark.stacks(*BUILD_LOGIC_STACKS)
def test_a_source_that_does_not_compile_shows_the_compiler_error(app, source_server):
    config = served_source_config(source_server, "jemalloc-5.3.0-broken.tar.gz", repacked_release(not_c))
    stderr = assert_failed_cleanly(app, app.compile(config))
    assert "jemalloc.c" in stderr
    assert "error" in stderr
