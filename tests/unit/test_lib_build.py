"""lib/build.sh and lib/versions.sh: which release a build takes and with which configure flags."""

import pytest

from shell import call

VERSIONS = ["lib/output.sh", "lib/versions.sh"]
BUILD = ["lib/output.sh", "lib/failure.sh", "lib/build.sh"]
TUNED = "narenas:2,background_thread:true,dirty_decay_ms:1000"


def lines(result) -> list[str]:
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_without_a_request_the_newest_listed_release_is_built():
    newest = lines(call(VERSIONS, "versions::newest"))
    assert lines(call(VERSIONS, "versions::select", "", "")) == newest
    assert newest[0] in lines(call(VERSIONS, "versions::all"))


def test_a_listed_release_is_taken_as_requested():
    assert lines(call(VERSIONS, "versions::select", "5.2.1", "")) == ["5.2.1"]


def test_an_unlisted_release_needs_a_checksum():
    refused = call(VERSIONS, "versions::select", "5.9.9", "")
    assert refused.returncode == 97
    assert "not a release this buildpack lists" in refused.stderr and "JEMALLOC_CHECKSUM" in refused.stderr
    assert lines(call(VERSIONS, "versions::select", "5.9.9", "a" * 64)) == ["5.9.9"]


@pytest.mark.parametrize("requested", ["5.3", "v5.3.0", "5.3.0-rc1", "latest", "5.3.0 "])
def test_a_malformed_version_is_refused_with_the_list_of_releases(requested):
    result = call(VERSIONS, "versions::select", requested, "")
    assert result.returncode == 97
    assert "is not a version number" in result.stderr and "5.3.0" in result.stderr


def test_the_pinned_checksum_is_used_unless_the_app_gives_one():
    pinned = lines(call(VERSIONS, "versions::source_checksum", "5.3.0", ""))[0]
    assert len(pinned) == 64
    assert lines(call(VERSIONS, "versions::source_checksum", "5.3.0", "b" * 64)) == ["b" * 64]


def test_releases_download_from_github_by_default():
    url = lines(call(VERSIONS, "versions::upstream_url", "5.3.0"))[0]
    assert url == "https://github.com/jemalloc/jemalloc/releases/download/5.3.0/jemalloc-5.3.0.tar.bz2"


@pytest.mark.parametrize("version, tuning, conf", [("5.3.0", "memory", TUNED), ("5.0.1", "memory", TUNED),
                                                   ("4.5.0", "memory", ""), ("5.3.0", "none", "")])
def test_the_memory_tuning_is_compiled_in_from_jemalloc_5_on(version, tuning, conf):
    result = call(BUILD, "build::default_malloc_conf", version, tuning)
    assert (result.returncode, result.stdout.strip()) == (0, conf)


def test_the_cache_key_names_the_same_flags_that_configure_gets(tmp_path):
    requested = lines(call(BUILD, "build::requested_options", "true", TUNED))
    assert requested == [f"--prefix=/app/vendor/jemalloc --enable-prof --with-malloc-conf={TUNED}"]
    (tmp_path / "configure").write_text("#!/bin/sh\necho '  --disable-static  --enable-documentation  '\n")
    (tmp_path / "configure").chmod(0o755)
    flags = lines(call(BUILD, "build::configure_flags", str(tmp_path), "true", TUNED, str(tmp_path / "log")))
    assert flags == [*requested[0].split(" "), "--disable-static", "--disable-doc"]


def test_configure_gets_no_flag_it_does_not_offer(tmp_path):
    (tmp_path / "configure").write_text("#!/bin/sh\necho 'Usage: configure [OPTION]...'\n")
    (tmp_path / "configure").chmod(0o755)
    flags = lines(call(BUILD, "build::configure_flags", str(tmp_path), "false", "", str(tmp_path / "log")))
    assert flags == ["--prefix=/app/vendor/jemalloc"]


@pytest.mark.parametrize("version, arch, flag", [("5.3.0", "aarch64", "--with-lg-page=16"), ("5.2.1", "arm64", "--with-lg-page=16"),
                                                 ("5.3.1", "aarch64", ""), ("5.10.0", "aarch64", ""), ("5.3.0", "x86_64", "")])
def test_arm64_builds_before_5_3_1_are_built_for_64k_pages(version, arch, flag):
    result = call(BUILD, "build::page_size_flag", version, arch)
    assert (result.returncode, result.stdout.strip()) == (0, flag)


CACHE = ["lib/output.sh", "lib/cache.sh"]


def test_the_cache_key_changes_with_everything_that_changes_the_library(tmp_path):
    recipe = tmp_path / "recipe"
    recipe.write_text("one")
    base = ["heroku-24", "x86_64", "5.3.0", "a" * 64, "--prefix=/app/vendor/jemalloc", str(recipe)]
    key = lines(call(CACHE, "cache::key", *base))[0]
    assert len(key) == 64 and lines(call(CACHE, "cache::key", *base)) == [key]
    for position, other in enumerate(["heroku-22", "aarch64", "5.2.1", "b" * 64, "--enable-prof"]):
        changed = [*base[:position], other, *base[position + 1:]]
        assert lines(call(CACHE, "cache::key", *changed)) != [key], f"{other} must change the key"
    recipe.write_text("two")
    assert lines(call(CACHE, "cache::key", *base)) != [key]
