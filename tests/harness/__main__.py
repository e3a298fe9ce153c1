"""Command line of the harness.

    python -m harness images [--stack LIST] [--jobs N] [--arm64]
                                                     pull or build the stack images (and the
                                                     arm64 stand-in, harness.stacks.ARM64_STAND_IN)
    python -m harness demo [--stack NAME] [--version V]  build a sample app, boot a dyno, show jemalloc

(run with PYTHONPATH=tests, as scripts/demo and scripts/test do)
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from . import images
from .stacks import ARM64_STAND_IN, selected_stacks


def build_images(stack_option: str | None, jobs: int, arm64: bool = False) -> int:
    # The arm64 stand-in first: built under emulation, it takes longest, and the other stacks
    # are built beside it.
    stacks = ([ARM64_STAND_IN] if arm64 else []) + selected_stacks(stack_option)
    started = time.monotonic()

    def one(stack):
        begun = time.monotonic()
        result = images.ensure(stack)
        return stack, result, time.monotonic() - begun

    failures = 0
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(one, stack) for stack in stacks]
        for future in futures:
            try:
                stack, result, seconds = future.result()
            except images.ImageBuildError as error:
                failures += 1
                print(f"FAILED: {error}", file=sys.stderr)
                continue
            source = "Heroku's images" if result.upstream else "local equivalents"
            print(f"{stack.name}: {result.run} and {result.build} ({source}) ready in {seconds:.0f}s")
            for kind in ("run", "build"):
                missing = images.missing_packages(result, kind)
                if missing is not None:
                    names, listed = missing
                    print(f"    {kind} image: {len(names)} of {listed} listed packages missing: {' '.join(names) or 'none'}")
    print(f"stack images: {time.monotonic() - started:.0f}s in all")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness")
    commands = parser.add_subparsers(dest="command", required=True)
    images_command = commands.add_parser("images", help="pull or build the stack images")
    images_command.add_argument("--stack", help="comma-separated stacks, or 'all' (default: the required ones, or $STACKS)")
    images_command.add_argument("--jobs", type=int, default=2, help="stacks built at once (default 2)")
    images_command.add_argument("--arm64", action="store_true", help="also the arm64 stand-in (Debian trixie, emulated)")
    demo_command = commands.add_parser("demo", help="build a sample app with the buildpack and boot a dyno")
    demo_command.add_argument("--stack", default="heroku-24")
    demo_command.add_argument("--version", default=None, help="JEMALLOC_VERSION (default: 5.3.0, from the offline fixtures)")
    args = parser.parse_args(argv)
    if args.command == "images":
        return build_images(args.stack, args.jobs, args.arm64)
    from .demo import run_demo

    return run_demo(args.stack, args.version)


if __name__ == "__main__":
    sys.exit(main())
