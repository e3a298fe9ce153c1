"""A dyno of an app built with this buildpack runs on jemalloc when, and only when, it is enabled."""

import re

from harness.paths import LIBRARY_FILE


def reported_version(stdout: str) -> tuple[str, str]:
    match = re.search(r"^jemalloc version \((\w+)\): (.*)$", stdout, re.MULTILINE)
    assert match, f"the probe printed no version line:\n{stdout}"
    return match[1], match[2]


def expected_method(stack) -> str:
    return "mallctl" if stack.run_image_has_python else "stats_print"


def test_the_dyno_process_and_its_child_have_jemalloc_mapped(enabled_dyno):
    main, child = enabled_dyno.probe_processes()
    assert enabled_dyno.mapped_files(main) == {LIBRARY_FILE}
    assert enabled_dyno.mapped_files(child) == {LIBRARY_FILE}


def test_jemalloc_reports_the_version_the_app_was_built_with(enabled_dyno, stack):
    method, version = reported_version(enabled_dyno.logs()[0])
    assert method == expected_method(stack)
    assert version.startswith("5.3.0-0-g"), version


def test_an_enabled_dyno_prints_nothing_on_stderr(enabled_dyno):
    assert enabled_dyno.logs()[1] == ""


def test_without_jemalloc_enabled_nothing_is_mapped_and_nothing_printed(disabled_dyno, stack):
    main, child = disabled_dyno.probe_processes()
    assert disabled_dyno.mapped_files(main) == set()
    assert disabled_dyno.mapped_files(child) == set()
    stdout, stderr = disabled_dyno.logs()
    assert reported_version(stdout) == (expected_method(stack), "none")
    assert stderr == ""
    assert "LD_PRELOAD" not in disabled_dyno.environ(main)
