"""`omnirouter worker`: run the stream processors against KAFKA_BOOTSTRAP and REDIS_URL."""

from __future__ import annotations

from typing import Any

import faust

from streams import logs
from streams.app import create_app
from streams.settings import Settings


class _Worker(faust.Worker):
    """faust's worker, logging through our structlog set-up instead of its own."""

    def _setup_logging(self) -> None:
        settings = Settings()
        logs.configure(settings.log_format, settings.log_level)

    def on_init_dependencies(self) -> Any:
        return super().on_init_dependencies()


def run_worker() -> int:
    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    app = create_app(settings)
    worker = _Worker(app, quiet=True, redirect_stdouts=False, loglevel=settings.log_level)
    worker.execute_from_commandline()
    return 0
