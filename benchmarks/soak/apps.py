"""The real apps: process types of benchmarks/realapp, the load each takes, and which of a dyno's
processes are its workers (for "how many workers fit in a dyno")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.configs import STACK_LIBJEMALLOC2

SOURCE = Path(__file__).resolve().parents[1] / "realapp"

# Ubuntu's own servers of the stack's release, installed into the benchmark image, never the slug.
PACKAGES = ("python3", "ruby", "redis-server", "ruby-sidekiq", "puma", "ruby-rack", "python3-celery",
            "python3-redis")
# Ubuntu's own jemalloc, for the config stack-libjemalloc2, where it means something.
STACK_JEMALLOC_PACKAGE = "libjemalloc2"
REDIS_URL = "redis://127.0.0.1:6379/0"
WEB_PORT = 5000


def packages_for(stack: str) -> tuple[str, ...]:
    """The soak image's packages on STACK."""
    return PACKAGES + ((STACK_JEMALLOC_PACKAGE,) if stack in STACK_LIBJEMALLOC2.stacks else ())


@dataclass(frozen=True)
class RealApp:
    name: str
    process_type: str
    # benchmarks/load/feeder.py's target: sidekiq, celery or http.
    feeder: str
    web: bool
    about: str
    language: str
    # Its workers as the Procfile runs them, and the config var that sets how many there are:
    # WEB_CONCURRENCY (puma's forked workers), CELERY_CONCURRENCY (prefork children) or
    # WORKER_PROCESSES (copies of a one-process server side by side, realapp/side-by-side).
    workers: int
    workers_variable: str

    def scaled(self, workers: int) -> dict[str, str]:
        """The config vars that run WORKERS workers."""
        return {self.workers_variable: str(workers)}

    @property
    def command(self) -> str:
        """The Procfile line's command, as Heroku runs it for this process type."""
        for line in (SOURCE / "Procfile").read_text().splitlines():
            process_type, _, command = line.partition(":")
            if process_type.strip() == self.process_type:
                return command.strip()
        raise KeyError(f"no process type {self.process_type} in {SOURCE / 'Procfile'}")


APPS = {
    app.name: app
    for app in (
        RealApp("sidekiq", "sidekiq", "sidekiq", False, "Sidekiq, 10 threads, one process", "ruby",
                1, "WORKER_PROCESSES"),
        RealApp("puma", "puma", "http", True, "puma cluster mode: 2 forked workers x 5 threads, preloaded app",
                "ruby", 2, "WEB_CONCURRENCY"),
        RealApp("celery-prefork", "celery_prefork", "celery", False, "Celery, prefork pool: 4 forked children",
                "python", 4, "CELERY_CONCURRENCY"),
        RealApp("celery-threads", "celery_threads", "celery", False, "Celery, threads pool: 10 threads, one process",
                "python", 1, "WORKER_PROCESSES"),
    )
}
