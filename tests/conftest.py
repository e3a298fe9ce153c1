"""Fixtures every test uses: the stack under test, the source server, and apps to compile and boot.

Tests that take a `stack_images` (or `app`, `built_app`...) fixture run once per selected
stack: the required five by default, `--stack heroku-24,heroku-26` or `--stack all` (or the
STACKS environment variable) to choose.
"""

from __future__ import annotations

import shutil

import pytest

import functools

from harness import compiles, images
from harness.app import App, remove_dynos
from harness.docker import remove_leftovers
from harness.paths import source_config as config_for
# Re-exported for test modules that still import them from here; their home is harness.paths.
from harness.paths import DEFAULT_VERSION, FIXTURE_TARBALLS, SNAPSHOT_CHECKSUM  # noqa: F401
from harness.sources import SourceServer
from harness.stacks import selected_stacks


def pytest_addoption(parser):
    parser.addoption("--stack", default=None, help="comma-separated stacks to test, or 'all' (default: $STACKS or the required ones)")


def pytest_generate_tests(metafunc):
    """Each test runs on every selected stack, or, where the test or its module
    (@pytest.mark.stacks(...), pytestmark) names the stacks it is about, on those of them that are
    selected."""
    if "stack_name" in metafunc.fixturenames:
        names = [stack.name for stack in selected_stacks(metafunc.config.getoption("--stack"))]
        marker = metafunc.definition.get_closest_marker("stacks")
        if marker:
            names = [name for name in names if name in marker.args]
        metafunc.parametrize("stack_name", names, scope="session")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadscope` (scripts/test) keeps each stack's tests in one worker (harness.scheduling)."""
    if config.getvalue("dist") == "loadscope":
        from harness.scheduling import StackScheduling

        return StackScheduling(config, log)
    return None


def pytest_sessionfinish(session):
    # In a worker of pytest-xdist: its compiles go to the controller, which prints them all.
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["compiles"] = compiles.to_json()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    compiles.add_json(getattr(node, "workeroutput", {}).get("compiles", "[]"))


def pytest_terminal_summary(terminalreporter):
    lines = compiles.summary()
    if lines:
        terminalreporter.section("jemalloc compiles")
        for line in lines:
            terminalreporter.write_line(line)


def pytest_sessionstart(session):
    # The host tier (test_faults_host.py) runs where there is no Docker.
    if shutil.which("docker"):
        remove_leftovers()


@pytest.fixture(autouse=True)
def _remove_dynos_after_each_test():
    yield
    remove_dynos()


@pytest.fixture(scope="session")
def stack_images(stack_name):
    from harness.stacks import STACKS

    return images.ensure(STACKS[stack_name])


@pytest.fixture(scope="session")
def stack(stack_images):
    return stack_images.stack


@pytest.fixture(scope="session")
def source_server():
    with SourceServer() as server:
        yield server


@pytest.fixture(scope="session")
def source_config(source_server):
    """source_config(version="5.3.0", fault="ok", **config_vars): config vars that make the
    buildpack take VERSION from the offline fixtures (harness.paths.source_config)."""
    return functools.partial(config_for, source_server)


@pytest.fixture
def app(stack_images):
    """A fresh app with an empty build cache, removed with its containers after the test."""
    with App(stack_images) as created:
        yield created


@pytest.fixture(scope="session")
def built_app(stack_images, source_config):
    """An app compiled once per stack with the default fixture version, shared by the runtime tests."""
    with App(stack_images) as created:
        build = created.compile(source_config())
        assert build.succeeded, build.output
        yield created, build


@pytest.fixture
def enabled_dyno(built_app):
    """A web dyno of the built app with JEMALLOC_ENABLED=true, running bin/probe (a process and its child)."""
    app, build = built_app
    dyno = app.boot(build, "bin/probe", {"JEMALLOC_ENABLED": "true"})
    dyno.wait_for_output("ready")
    return dyno


@pytest.fixture
def disabled_dyno(built_app):
    """The same dyno without JEMALLOC_ENABLED."""
    app, build = built_app
    dyno = app.boot(build, "bin/probe")
    dyno.wait_for_output("ready")
    return dyno
