"""lib/config.sh: how a build reads the app's config vars from ENV_DIR, and what it refuses."""

import pytest

from shell import call

SOURCES = ["lib/output.sh", "lib/download.sh", "lib/config.sh"]


def config(tmp_path, function: str, **values: str):
    for name, value in values.items():
        (tmp_path / name).write_text(value)
    return call(SOURCES, function, str(tmp_path))


def test_a_value_is_read_from_its_file_with_surrounding_blanks_removed(tmp_path):
    (tmp_path / "JEMALLOC_VERSION").write_text("  5.3.0\n\n")
    result = call(SOURCES, "config::value", str(tmp_path), "JEMALLOC_VERSION")
    assert (result.returncode, result.stdout) == (0, "5.3.0\n")


def test_an_unset_value_reads_as_empty(tmp_path):
    result = call(SOURCES, "config::value", str(tmp_path), "JEMALLOC_VERSION")
    assert (result.returncode, result.stdout) == (0, "\n")


def test_a_value_with_a_nul_byte_fails_the_build_and_says_how_to_fix_it(tmp_path):
    (tmp_path / "JEMALLOC_VERSION").write_bytes(b"5.3\x000")
    result = call(SOURCES, "config::value", str(tmp_path), "JEMALLOC_VERSION")
    assert result.returncode == 97
    assert "JEMALLOC_VERSION contains a NUL byte" in result.stderr
    assert "heroku config:unset JEMALLOC_VERSION" in result.stderr


@pytest.mark.parametrize("given, read", [("", ""), ("ABCDEF" + "0" * 58, "abcdef" + "0" * 58)])
def test_a_checksum_is_read_in_lowercase(tmp_path, given, read):
    result = config(tmp_path, "config::checksum", JEMALLOC_CHECKSUM=given)
    assert (result.returncode, result.stdout) == (0, read + "\n")


@pytest.mark.parametrize("given", ["abc", "g" * 64, "0" * 63, "0" * 65])
def test_a_checksum_that_is_not_sha256_is_refused(tmp_path, given):
    result = config(tmp_path, "config::checksum", JEMALLOC_CHECKSUM=given)
    assert result.returncode == 97
    assert "is not a SHA-256 checksum" in result.stderr and "heroku config:set JEMALLOC_CHECKSUM" in result.stderr


@pytest.mark.parametrize("url", ["https://mirror.example.com/j.tar.bz2", "HTTP://m/j.tar.gz", "file:///tmp/j.tar.bz2"])
def test_http_https_and_file_urls_are_accepted(tmp_path, url):
    result = config(tmp_path, "config::source_url", JEMALLOC_SOURCE_URL=url)
    assert (result.returncode, result.stdout) == (0, url + "\n")


@pytest.mark.parametrize("url", ["ftp://m/j.tar.bz2", "https://m/a b.tar.bz2", "mirror/j.tar.bz2", "gopher://x"])
def test_other_urls_are_refused(tmp_path, url):
    result = config(tmp_path, "config::source_url", JEMALLOC_SOURCE_URL=url)
    assert result.returncode == 97
    assert "is not an http://, https:// or file:// URL" in result.stderr


def test_a_refused_url_keeps_its_password_out_of_the_log(tmp_path):
    result = config(tmp_path, "config::source_url", JEMALLOC_SOURCE_URL="ftp://user:s3cret-pass@m/j.tar.bz2")
    assert result.returncode == 97
    assert "s3cret-pass" not in result.stderr


@pytest.mark.parametrize("given, seconds", [("", "60"), ("120", "120"), ("007", "7"), ("999999999", "999999999")])
def test_the_download_timeout_is_a_whole_number_of_seconds(tmp_path, given, seconds):
    result = config(tmp_path, "config::download_timeout", JEMALLOC_DOWNLOAD_TIMEOUT=given)
    assert (result.returncode, result.stdout) == (0, seconds + "\n")


@pytest.mark.parametrize("given", ["0", "-5", "1.5", "ten", "1000000000"])
def test_other_timeouts_are_refused(tmp_path, given):
    result = config(tmp_path, "config::download_timeout", JEMALLOC_DOWNLOAD_TIMEOUT=given)
    assert result.returncode == 97
    assert "is not a positive whole number of seconds" in result.stderr


@pytest.mark.parametrize("given, read", [("", "false"), ("TRUE", "true"), ("1", "true"), ("yes", "true"),
                                         ("on", "true"), ("Off", "false"), ("0", "false"), ("no", "false")])
def test_profiling_is_on_or_off(tmp_path, given, read):
    result = config(tmp_path, "config::profiling", JEMALLOC_PROFILING=given)
    assert (result.returncode, result.stdout) == (0, read + "\n")


def test_any_other_profiling_value_is_refused(tmp_path):
    result = config(tmp_path, "config::profiling", JEMALLOC_PROFILING="maybe")
    assert result.returncode == 97 and "JEMALLOC_PROFILING 'maybe' is neither on nor off" in result.stderr


@pytest.mark.parametrize("given, read", [("", "memory"), ("Memory", "memory"), ("NONE", "none")])
def test_tuning_is_memory_or_none(tmp_path, given, read):
    result = config(tmp_path, "config::tuning", JEMALLOC_TUNING=given)
    assert (result.returncode, result.stdout) == (0, read + "\n")


def test_any_other_tuning_is_refused(tmp_path):
    result = config(tmp_path, "config::tuning", JEMALLOC_TUNING="speed")
    assert result.returncode == 97 and "JEMALLOC_TUNING 'speed' is neither memory nor none" in result.stderr
