"""The stack images stand in for Heroku's: same Ubuntu, glibc, users, tools, and packages."""

from harness.docker import run_once
from harness.images import missing_packages


def run_in(image: str, command: str) -> str:
    return run_once(image, "bash", "-c", command).stdout.strip()


def facts(image: str) -> dict[str, str]:
    output = run_in(
        image,
        '. /etc/os-release; echo "ubuntu=$VERSION_ID"; echo "glibc=$(getconf GNU_LIBC_VERSION | cut -d" " -f2)";'
        ' echo "user=$(id -un)"; echo "uid=$(id -u)";'
        ' echo "gcc=$(command -v gcc || true)"; echo "make=$(command -v make || true)";'
        ' echo "python3=$(command -v python3 || true)";'
        ' echo "libc_dev=$(test -e /usr/include/stdio.h && echo yes || true)";'
        ' echo "bin_is_link=$(test -L /bin && echo yes || true)";'
        ' echo "heroku_uid=$(id -u heroku 2>/dev/null || true)"',
    )
    return dict(line.split("=", 1) for line in output.splitlines())


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def test_run_image_matches_the_stack_table(stack_images, stack):
    seen = facts(stack_images.run)
    assert seen["ubuntu"] == stack.ubuntu_version
    if stack.glibc:
        assert seen["glibc"] == stack.glibc
    else:
        assert version_tuple(seen["glibc"]) > (2, 39)
    assert seen["user"] == stack.default_user
    assert seen["uid"] == str(stack.default_uid)
    assert bool(seen["gcc"]) == stack.run_image_has_compiler
    assert bool(seen["make"]) == stack.run_image_has_compiler
    assert bool(seen["python3"]) == stack.run_image_has_python
    assert (seen["bin_is_link"] == "yes") == stack.merged_usr
    assert (seen["heroku_uid"] == "1000") == stack.has_heroku_user


def test_build_image_has_the_build_tools_and_the_same_user(stack_images, stack):
    seen = facts(stack_images.build)
    assert seen["ubuntu"] == stack.ubuntu_version
    assert seen["user"] == stack.default_user
    assert seen["gcc"] and seen["make"] and seen["libc_dev"] == "yes"
    assert seen["python3"]
    tools = run_in(stack_images.build, "for tool in curl tar bzip2 gzip autoconf strip sha256sum; do command -v $tool; done")
    assert len(tools.splitlines()) == 7, tools


def test_at_most_three_percent_of_the_listed_packages_are_missing(stack_images):
    for kind in ("run", "build"):
        missing = missing_packages(stack_images, kind)
        if missing is None:
            continue  # Heroku's own image: nothing to measure
        names, listed = missing
        assert listed > 300
        assert len(names) * 100 <= listed * stack_images.stack.max_missing_percent, f"{kind} image lacks {names}"
