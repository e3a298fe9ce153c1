"""jemalloc's background thread, which returns freed memory to the kernel while a process idles,
keeps running in forked children (puma workers, Celery's prefork pool), where jemalloc itself
stops it; jemalloc-check shows it per process.

The truth is the kernel's list of each process's threads (/proc/PID/task/*/comm): jemalloc names
its background thread jemalloc_bg_thd. A forked child gets it back once it has shown that it
lives on: after 1,024 allocations and frees, 4 MiB allocated, or 32 of them and 200 ms
(src/background_thread_after_fork.c); these shells allocate little, so the tests wait.
"""

from __future__ import annotations

import shlex
import time

import pytest

from test_check import table

ENABLED = {"JEMALLOC_ENABLED": "true"}
# A dyno whose main process (bash) forks a subshell that stays a fork of it, never exec'ing.
FORKING_COMMAND = "( while :; do sleep 1; done ) & echo ready; wait"


# Longer than the restart's delay plus a loop iteration of FORKING_COMMAND's child.
SETTLE_SECONDS = 2.5


def has_background_thread(dyno, pid: int) -> bool | None:
    """Whether process PID runs jemalloc's background thread; None when it has exited."""
    listed = dyno.exec(f"cat /proc/{pid}/task/*/comm")
    if listed.returncode != 0:
        return None
    return "jemalloc_bg_thd" in listed.stdout.split()


def parent_and_forked_child(dyno):
    main = dyno.main_process()
    (child,) = [process for process in dyno.children(main) if process.name == "bash"]
    return main, child


def boot_forking_dyno(built_app, config):
    app, build = built_app
    dyno = app.boot(build, FORKING_COMMAND, config, process_type="worker")
    dyno.wait_for_output("ready")
    time.sleep(SETTLE_SECONDS)
    return dyno


def test_a_forked_child_runs_the_background_thread_like_its_parent(built_app):
    dyno = boot_forking_dyno(built_app, ENABLED)
    main, child = parent_and_forked_child(dyno)
    assert has_background_thread(dyno, main.pid) is True
    assert has_background_thread(dyno, child.pid) is True
    result = dyno.exec(f"jemalloc-check {main.pid} {child.pid}", login=True)
    assert result.returncode == 0, result.output
    _, rows = table(result.stdout)
    assert (rows[main.pid].background_thread, rows[child.pid].background_thread) == ("yes", "yes")


def test_the_switch_turns_the_restart_off_and_jemalloc_check_says_so(built_app):
    dyno = boot_forking_dyno(built_app, {**ENABLED, "JEMALLOC_BACKGROUND_THREAD_AFTER_FORK": "false"})
    main, child = parent_and_forked_child(dyno)
    # jemalloc's own behaviour: the parent keeps its thread, the child has none.
    assert has_background_thread(dyno, main.pid) is True
    assert has_background_thread(dyno, child.pid) is False
    processes = {entry["pid"]: entry for entry in dyno.check(main.pid, child.pid)["processes"]}
    assert processes[main.pid]["background_thread"] is True
    assert processes[child.pid]["background_thread"] is False


def test_a_parent_without_background_thread_gives_children_without(built_app):
    dyno = boot_forking_dyno(built_app, {**ENABLED, "MALLOC_CONF": "background_thread:false"})
    main, child = parent_and_forked_child(dyno)
    assert has_background_thread(dyno, main.pid) is False
    assert has_background_thread(dyno, child.pid) is False


def test_jemalloc_check_all_shows_the_background_thread_of_every_process(built_app):
    dyno = boot_forking_dyno(built_app, ENABLED)
    processes = dyno.processes()
    result = dyno.exec("jemalloc-check --all", login=True)
    _, rows = table(result.stdout)
    checked = []
    for process in processes:
        truth = has_background_thread(dyno, process.pid)
        if truth is None:
            continue  # one of the loop's short `sleep 1`, gone since
        assert rows[process.pid].background_thread == ("yes" if truth else "no"), (process, result.stdout)
        checked.append(process.pid)
    main, child = parent_and_forked_child(dyno)
    assert {main.pid, child.pid} <= set(checked)


def test_fork_heavy_shell_work_finishes(built_app):
    """Subshells, command substitutions and external commands, hundreds of each, as build scripts do."""
    app, build = built_app
    script = 'for i in $(seq 300); do ( : ); x=$(echo "$i"); /bin/true; done; echo "finished $x"'
    result = app.run(build, script, ENABLED, timeout=300)
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "finished 300", "")


def test_a_threaded_program_that_forks_often_keeps_working(built_app, stack):
    """Python threads allocating while the main thread forks 200 children, each checking jemalloc."""
    if not stack.run_image_has_python:
        pytest.skip(f"{stack.name}'s run image has no python3; the shell tests cover forking there")
    app, build = built_app
    script = r"""
import ctypes, os, threading, time
libc = ctypes.CDLL(None)
def background_thread():
    value, size = ctypes.c_bool(), ctypes.c_size_t(1)
    assert libc.mallctl(b"background_thread", ctypes.byref(value), ctypes.byref(size), None, ctypes.c_size_t(0)) == 0
    return value.value
stop = threading.Event()
def churn():
    while not stop.is_set():
        [bytes(size) for size in (64, 4096, 70000, 300000)]
threads = [threading.Thread(target=churn) for _ in range(4)]
for thread in threads: thread.start()
children = []
for _ in range(200):
    pid = os.fork()
    if pid == 0:
        # A worker that lives on: it works a little (40 allocations and frees, past the
        # restart's minimum of 32) after the restart's delay, then asks jemalloc.
        time.sleep(0.5)
        for _ in range(40): bytes(100000)
        os._exit(0 if background_thread() else 3)
    children.append(pid)
with_thread = sum(os.WEXITSTATUS(os.waitpid(pid, 0)[1]) == 0 for pid in children)
stop.set()
for thread in threads: thread.join()
print("children with the background thread:", with_thread)
"""
    result = app.run(build, f"python3 -c {shlex.quote(script)}", ENABLED, timeout=300)
    assert result.returncode == 0, result.output
    assert result.stdout.strip() == "children with the background thread: 200"
