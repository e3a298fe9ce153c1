"""Fixtures every test uses: the stack under test, the source server, and apps to compile and boot.

Tests that take a `stack_images` (or `app`, `built_app`...) fixture run once per selected
stack: the required five by default, `--stack heroku-24,heroku-26` or `--stack all` (or the
STACKS environment variable) to choose.
"""

from __future__ import annotations

import shutil

import pytest

from harness import images
from harness.app import App, remove_dynos
from harness.docker import remove_leftovers
from harness.sources import SourceServer
from harness.stacks import selected_stacks

DEFAULT_VERSION = "5.3.0"
FIXTURE_TARBALLS = {
    "5.2.1": "jemalloc-5.2.1.tar.bz2",
    "5.3.0": "jemalloc-5.3.0.tar.bz2",
    "5.3.1": "jemalloc-5.3.1-git-snapshot.tar.gz",
}
# The 5.3.1 fixture is a git snapshot, not the release tarball, so its pinned checksum does not apply.
SNAPSHOT_CHECKSUM = "aac0e7afdbfb8abcbe7cab63597b63abacf22e8b701116a10a45b5ff50ac0c29"


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
    """Config vars that make the buildpack take VERSION from the offline fixtures."""

    def config(version: str = DEFAULT_VERSION, fault: str = "ok", **extra: str) -> dict[str, str]:
        values = {
            "JEMALLOC_VERSION": version,
            "JEMALLOC_SOURCE_URL": source_server.url(FIXTURE_TARBALLS[version], fault),
        }
        if version == "5.3.1":
            values["JEMALLOC_CHECKSUM"] = SNAPSHOT_CHECKSUM
        values.update(extra)
        return values

    return config


@pytest.fixture
def app(stack_images):
    """A fresh app with an empty build cache, removed with its containers after the test."""
    created = App(stack_images)
    yield created
    created.cleanup()


@pytest.fixture(scope="session")
def built_app(stack_images, source_config):
    """An app compiled once per stack with the default fixture version, shared by the runtime tests."""
    created = App(stack_images)
    build = created.compile(source_config())
    assert build.succeeded, build.output
    yield created, build
    created.cleanup()


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
