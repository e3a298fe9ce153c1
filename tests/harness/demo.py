"""The demo: what a user sees when they add the buildpack to an app and enable it.

Builds the sample app (tests/apps/sample) with this buildpack on one stack, taking jemalloc
from the offline source fixtures, boots a dyno with JEMALLOC_ENABLED=true, and shows the proof
that its processes run on jemalloc: the library mapped in /proc/PID/maps and the version
jemalloc itself reports.
"""

from __future__ import annotations

from . import images
from .app import App
from .paths import DEFAULT_VERSION, FIXTURE_TARBALLS, source_config
from .sources import SourceServer
from .stacks import STACKS


def _say(message: str = "") -> None:
    print(message, flush=True)


def run_demo(stack_name: str, version: str | None) -> int:
    version = version or DEFAULT_VERSION
    if stack_name not in STACKS:
        _say(f"unknown stack {stack_name}; known: {', '.join(STACKS)}")
        return 2
    if version not in FIXTURE_TARBALLS:
        _say(f"the demo builds from the offline fixtures, which hold {', '.join(FIXTURE_TARBALLS)}")
        return 2
    _say(f"== Stack images for {stack_name}")
    stack_images = images.ensure(STACKS[stack_name])
    _say(f"   run image {stack_images.run}, build image {stack_images.build}")
    app = App(stack_images)
    try:
        with SourceServer() as server:
            config = source_config(server, version)
            _say(f"\n== git push heroku main (config: {' '.join(f'{k}={v}' for k, v in config.items())})")
            build = app.compile(config)
            _say(build.stdout + build.stderr)
            if not build.succeeded:
                _say(f"the build failed (exit {build.returncode})")
                return 1

        _say("== heroku config:set JEMALLOC_ENABLED=true; a web dyno runs bin/probe")
        dyno = app.boot(build, "bin/probe", {"JEMALLOC_ENABLED": "true"})
        stdout = dyno.wait_for_output("ready")
        _say("   the dyno printed:")
        for line in stdout.splitlines():
            _say(f"     {line}")
        stderr = dyno.logs()[1]
        _say(f"   and on stderr: {stderr.strip() or '(nothing)'}")
        main = dyno.main_process()
        active = True
        for process in [main, *dyno.children(main)]:
            mapped = dyno.mapped_files(process)
            active &= bool(mapped)
            _say(f"   PID {process.pid} ({process.name}): {', '.join(sorted(mapped)) or 'no libjemalloc mapped'}")
        env = dyno.environ(main)
        _say(f"   LD_PRELOAD={env.get('LD_PRELOAD', '')} MALLOC_ARENA_MAX={env.get('MALLOC_ARENA_MAX', '')}")
        _say("\n== heroku ps:exec --dyno web.1 'jemalloc-check --all'")
        checked = dyno.exec("jemalloc-check --all", login=True)
        for line in checked.output.splitlines():
            _say(f"   {line}")
        active &= checked.returncode == 0
        _say("\njemalloc is active in the dyno." if active else "\njemalloc is NOT active in the dyno.")
        return 0 if active else 1
    finally:
        app.cleanup()
