"""`omnirouter worker`: run the stream processors against KAFKA_BOOTSTRAP and REDIS_URL."""

from __future__ import annotations

import faust

from streams import logs
from streams.app import create_app
from streams.settings import Settings


class _Worker(faust.Worker):
    """faust's worker, logging through our structlog set-up instead of its own."""

    def _setup_logging(self) -> None:
        settings = Settings()
        logs.configure(settings.log_format, settings.log_level)


def run_worker() -> int:
    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    app = create_app(settings)
    worker = _Worker(app, quiet=True, redirect_stdouts=False, loglevel=settings.log_level)
    worker.spinner = None  # its terminal escapes would garble `omnirouter dev`'s output
    worker.execute_from_commandline()
    return 0
