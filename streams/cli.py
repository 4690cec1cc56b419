"""The `omnirouter` command: dev, worker, gateway, train, eval."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from streams import logs
from streams.settings import Settings


def _require_id_key() -> None:
    """Fail at start, not on the first anonymous message, when the id key is missing."""
    from session.settings import MissingIdKey, id_key

    try:
        id_key()
    except MissingIdKey as exc:
        raise SystemExit(str(exc)) from None


def _worker(_: argparse.Namespace) -> int:
    from streams.worker import run_worker

    _require_id_key()
    return run_worker()


def _configured() -> Settings:
    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    _require_id_key()
    return settings


def _gateway(_: argparse.Namespace) -> int:
    from channels.serve import run_gateway

    s = _configured()
    return run_gateway(s.require_bootstrap(), s.require_redis())


def _delivery(_: argparse.Namespace) -> int:
    from channels.delivery import run_delivery

    s = _configured()
    return run_delivery(s.require_bootstrap(), s.require_redis(), s.worker_id)


def _dev(args: argparse.Namespace) -> int:
    from streams.devkit.run import run_dev

    return run_dev(workers=args.workers)


def _topics(args: argparse.Namespace) -> int:
    from streams.admin import topics_main

    return topics_main(args.rest)


def _training(command: str, rest: list[str]) -> int:
    """Run ``python -m training.nlu.cli COMMAND ...`` from the checkout this package lives in.

    Training code and corpora sit in training/nlu/ beside the packages and are not installed,
    so this works from a checkout (editable install) only; nothing here imports them.
    """
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    if not (root / "training" / "nlu" / "cli.py").is_file():
        print(
            f"omnirouter {command}: the training code is not installed with the package; "
            "run it from a checkout (make model / make eval)",
            file=sys.stderr,
        )
        return 2
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    return subprocess.call([sys.executable, "-m", "training.nlu.cli", command, *rest], env=env)


def _train(args: argparse.Namespace) -> int:
    return _training("train", args.rest)


def _eval(args: argparse.Namespace) -> int:
    return _training("eval", args.rest)


def _report(args: argparse.Namespace) -> int:
    """`omnirouter report --since 7d --out DIR`: review.html and review.json from the
    history store (OMNIROUTER_ANALYTICS_DB), the same page as GET /v1/reports/review."""
    import json
    from pathlib import Path

    from channels import review
    from channels.gateway.analytics import parse_time
    from schemas.envelope import now_ms
    from session.history import History

    now = now_ms()
    since = parse_time(args.since, "since", now)
    until = parse_time(args.until, "until", now) if args.until else now
    page, data = review.review(History(), since, until)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "review.html").write_text(page, encoding="utf-8")
    (out / "review.json").write_text(json.dumps(data, ensure_ascii=False, indent=1), "utf-8")
    print(f"wrote {out / 'review.html'} and {out / 'review.json'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omnirouter", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="broker, Redis, gateway and workers on this machine")
    dev.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    dev.set_defaults(func=_dev)
    sub.add_parser(
        "worker", help="one stream worker against KAFKA_BOOTSTRAP and REDIS_URL"
    ).set_defaults(func=_worker)
    sub.add_parser(
        "gateway", help="the HTTP gateway against KAFKA_BOOTSTRAP and REDIS_URL"
    ).set_defaults(func=_gateway)
    sub.add_parser(
        "delivery", help="deliver replies (cs.outbound.v1) on email, chat, app and phone"
    ).set_defaults(func=_delivery)
    report = sub.add_parser("report", help="write the review page and its data to a folder")
    report.add_argument("--since", default="7d", help="ISO time, epoch ms or a span (7d)")
    report.add_argument("--until", default=None)
    report.add_argument("--out", default="review", help="folder (created)")
    report.set_defaults(func=_report)
    for name, func, help_ in (
        ("topics", _topics, "create the missing topics on KAFKA_BOOTSTRAP (run before a deploy)"),
        ("train", _train, "train the message-understanding model"),
        ("eval", _eval, "evaluate it on a JSONL file"),
    ):
        p = sub.add_parser(name, help=help_, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=func)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
