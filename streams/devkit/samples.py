"""Sample data for `omnirouter dev` and tests: the starter knowledge base and a fund catalogue.

The fund records come from the classifier's sample catalogue (streams/nlu/data/funds.json,
whose NAVs are illustrative and dated 2024). Loaded for development they are marked
`"sample": true`, their source says so, and their NAV is dated the last trading day before
today, so the bot can be tried out; nothing here is market data.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from schemas.envelope import now_ms
from session.tradingdays import previous_trading_day, today_shanghai
from streams.nlu.catalogue import load_catalogue

SAMPLE_SOURCE = "样例数据（非真实行情）"
_TYPES = {"货币型", "债券型", "混合型", "股票型", "指数型", "QDII", "FOF"}


def knowledge_articles() -> list[dict[str, Any]]:
    raw = resources.files("streams.devkit").joinpath("samples/knowledge.json").read_text()
    articles: list[dict[str, Any]] = json.loads(raw)["articles"]
    return articles


def sample_funds(at_ms: int | None = None) -> list[dict[str, Any]]:
    """PUT /v1/funds bodies (with their code) for the sample catalogue."""
    nav_date = previous_trading_day(today_shanghai(at_ms or now_ms())).isoformat()
    out = []
    for f in load_catalogue().funds:
        out.append(
            {
                "code": f.code,
                "name": f.name,
                "share_class": f.share_class,
                "type": f.type if f.type in _TYPES else "混合型",
                "risk": f.risk,
                "nav": {"value": f.nav, "date": nav_date, "source": SAMPLE_SOURCE},
                "fees": dict(f.fees),
                "redemption_arrival": f.redemption_arrival or None,
                "sample": True,
            }
        )
        if f.manager:
            out[-1]["manager"] = f.manager
    return out
