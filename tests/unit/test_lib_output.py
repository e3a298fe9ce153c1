"""lib/output.sh, lib/download.sh, lib/record.sh and lib/report.sh: what reaches the build log,
and the records a build leaves for jemalloc-check and bin/report."""

import pytest

from shell import call, script

OUTPUT = ["lib/output.sh"]
DOWNLOAD = ["lib/output.sh", "lib/download.sh"]
RECORDS = ["lib/record.sh", "lib/report.sh"]


def test_steps_details_and_errors_follow_herokus_conventions():
    assert call(OUTPUT, "output::step", "Installing").stdout == "-----> Installing\n"
    assert call(OUTPUT, "output::detail", "Built in 4 s").stdout == "       Built in 4 s\n"
    error = call(OUTPUT, "output::error", "It broke.", "Fix it.")
    assert (error.returncode, error.stdout, error.stderr) == (97, "", " !     It broke.\n !     Fix it.\n")


def test_a_log_line_hides_registered_secrets_and_control_characters():
    result = script(OUTPUT, 'output::hide s3cret; output::step "$1"', "token s3cret\x1b[31m\tend\nmore")
    assert result.stdout == "-----> token ***?[31m end?more\n"


def test_a_long_line_is_cut():
    result = call(OUTPUT, "output::clean", "x" * 1500)
    assert result.stdout == "x" * 1000 + "... (1500 characters in all)\n"


def test_a_value_is_quoted_printable_and_short():
    assert call(OUTPUT, "output::printable", "a\x01b").stdout == "a\\x01b\n"
    assert call(OUTPUT, "output::printable", "y" * 120).stdout == "y" * 100 + "... (120 bytes in all)\n"


@pytest.mark.parametrize("url, shown", [
    ("https://mirror.example.com/j.tar.bz2", "https://mirror.example.com/j.tar.bz2"),
    ("https://user:p@ss:w/rd@mirror/j.tar.bz2", "https://***@mirror/j.tar.bz2"),
    ("https://m/j.tar.bz2?X-Amz-Signature=abc&flag", "https://m/j.tar.bz2?X-Amz-Signature=***&***"),
    ("https://m/j.tar.bz2#frag", "https://m/j.tar.bz2#***"),
    ("https://m/j.tar.bz2?next=a@b", "https://***"),
])
def test_urls_are_shown_without_their_secrets(url, shown):
    assert call(DOWNLOAD, "download::redact_url", url).stdout == shown + "\n"


def test_every_form_of_a_urls_password_is_hidden_from_later_lines():
    result = script(DOWNLOAD, 'download::hide_url_secrets "$1"; output::detail "$2"',
                    "https://me:pa%40ss@m/j?token=abcdefgh12", "pa%40ss pa@ss abcdefgh12")
    assert result.stdout == "       *** *** ***\n"


@pytest.mark.parametrize("curl_status, http_status, retried", [
    ("22", "503", True), ("22", "429", True), ("22", "404", False), ("28", "000", True), ("6", "000", True), ("37", "000", False)])
def test_only_failures_that_another_attempt_may_cure_are_retried(curl_status, http_status, retried):
    assert (call(DOWNLOAD, "download::is_retriable", curl_status, http_status).returncode == 0) is retried


def test_a_record_is_written_whole_with_each_fact_on_its_line(tmp_path):
    record = tmp_path / "build-info"
    result = call(RECORDS, "record::write", str(record), "=", "version", "5.3.0", "note", "two\nlines")
    assert result.returncode == 0
    assert record.read_text() == "version=5.3.0\nnote=two lines\n"
    assert [path.name for path in tmp_path.iterdir()] == ["build-info"]


def test_a_record_that_cannot_be_written_leaves_nothing_behind(tmp_path):
    (tmp_path / "build-info").write_text("version=5.2.1\n")
    # A rename that fails (a full or read-only disk): the old record stays, no temporary file is left.
    result = script(RECORDS, 'mv() { return 1; }; record::write "$1" = version 5.3.0', str(tmp_path / "build-info"))
    assert result.returncode != 0
    assert [path.name for path in tmp_path.iterdir()] == ["build-info"]
    assert (tmp_path / "build-info").read_text() == "version=5.2.1\n"


def test_the_build_report_prints_as_yaml(tmp_path):
    (tmp_path / "jemalloc").mkdir()
    result = script(RECORDS, 'report::write "$1" version 5.3.0 cache_hit true build_seconds 42 note \'say "hi"\'; report::print "$1"',
                    str(tmp_path))
    assert result.stdout == 'version: "5.3.0"\ncache_hit: true\nbuild_seconds: 42\nnote: "say \\"hi\\""\n'


def test_a_report_that_cannot_be_written_does_not_fail_the_build(tmp_path):
    result = call(RECORDS, "report::write", str(tmp_path / "missing"), "version", "5.3.0")
    assert (result.returncode, result.stderr) == (0, "")
