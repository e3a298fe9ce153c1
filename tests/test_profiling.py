"""JEMALLOC_PROFILING=true builds a jemalloc that writes heap profiles jeprof can read."""

import pytest

# Allocation-heavy enough to be sampled: bash keeps 200k words in memory.
ALLOCATE = "words=$(seq 200000); echo ${#words}"


@pytest.fixture(scope="module")
def profiling_build(built_app, source_config):
    app, _ = built_app
    build = app.compile(source_config(JEMALLOC_PROFILING="true"))
    assert build.succeeded, build.output
    return app, build


def test_a_profiling_build_says_so(profiling_build):
    app, build = profiling_build
    assert "profiling enabled" in build.stdout
    assert app.report()["profiling"] is True


def test_a_heap_profile_is_written_and_jeprof_reads_it(profiling_build):
    app, build = profiling_build
    config = {"JEMALLOC_ENABLED": "true", "MALLOC_CONF": "prof:true,prof_final:true,lg_prof_sample:10,prof_prefix:/tmp/heap"}
    result = app.run(
        build,
        f"bash -c '{ALLOCATE}' && ls /tmp/heap.*.heap && "
        "jeprof --text /bin/bash /tmp/heap.*.heap 2>/dev/null | head -n 5",
        config,
    )
    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].startswith("/tmp/heap.") and lines[1].endswith(".heap"), result.stdout
    assert any(line.startswith("Total:") for line in lines), result.output


def test_without_profiling_the_same_settings_write_nothing(built_app):
    app, build = built_app
    config = {"JEMALLOC_ENABLED": "true", "MALLOC_CONF": "prof:true,prof_final:true,prof_prefix:/tmp/heap"}
    result = app.run(build, f"bash -c '{ALLOCATE}'; ls /tmp", config)
    assert "heap." not in result.stdout
    # jemalloc built without profiling names the options it does not know.
    assert "Invalid conf pair: prof:true" in result.stderr
