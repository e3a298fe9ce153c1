"""The real apps: process types of benchmarks/realapp, the load each takes, and which of a dyno's
processes are its workers (for "how many workers fit in a dyno")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "realapp"

# Ubuntu's own servers of the stack's release, installed into the benchmark image, never the slug.
PACKAGES = ("python3", "ruby", "redis-server", "ruby-sidekiq", "puma", "ruby-rack", "python3-celery",
            "python3-redis")
REDIS_URL = "redis://127.0.0.1:6379/0"
WEB_PORT = 5000


@dataclass(frozen=True)
class RealApp:
    name: str
    process_type: str
    # benchmarks/load/feeder.py's target: sidekiq, celery or http.
    feeder: str
    web: bool
    about: str

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
        RealApp("sidekiq", "sidekiq", "sidekiq", False, "Sidekiq, 10 threads, one process"),
        RealApp("puma", "puma", "http", True, "puma cluster mode: 2 forked workers x 5 threads, preloaded app"),
        RealApp("celery-prefork", "celery_prefork", "celery", False, "Celery, prefork pool: 4 forked children"),
        RealApp("celery-threads", "celery_threads", "celery", False, "Celery, threads pool: 10 threads, one process"),
    )
}
