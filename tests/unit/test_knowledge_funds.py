"""Knowledge search, trading days and NAV freshness, and the article and fund bodies: pure."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from schemas import models
from schemas.errors import SchemaError
from session import tradingdays as td
from session.kbsearch import Index
from streams.devkit import samples

ROOT = Path(__file__).resolve().parents[2]


def _ms(y: int, m: int, d: int, hour: int = 10) -> int:
    return int(dt.datetime(y, m, d, hour, tzinfo=td.SHANGHAI).timestamp() * 1000)


def test_search_ranks_the_article_that_answers_first() -> None:
    """A paraphrase finds its article at the top, with a coverage score in [0, 1]."""
    index = Index(samples.knowledge_articles())
    hits = index.search("债券基金赎回到账要几天", 3)
    assert hits[0].id == "kb-redemption-arrival"
    assert 0 < hits[0].coverage <= 1
    assert index.search("定投金额想改大一点", 3)[0].id == "kb-sip-change"


def test_search_filters_by_channel_and_intent() -> None:
    arts = [
        {"id": "a", "title": "定投设置", "body": "定投", "intents": ["sip"], "channels": ["app"]},
        {"id": "b", "title": "定投设置", "body": "定投", "intents": ["sip"], "channels": []},
    ]
    index = Index(arts)
    assert {h.id for h in index.search("定投", 5, channel="phone")} == {"b"}
    assert index.search("定投", 5, intents=["fees"]) == []


def test_unknown_words_give_low_coverage() -> None:
    index = Index(samples.knowledge_articles())
    hits = index.search("量子计算机的定投", 3)
    assert not hits or hits[0].coverage < 0.6


def test_labelled_queries_are_not_copied_from_the_articles() -> None:
    """The query set measures search, not memory: no query repeats a title or sample question."""
    seen = set()
    for a in samples.knowledge_articles():
        seen |= {a["title"], *a.get("questions", [])}
    lines = (ROOT / "bench/data/kb_queries.jsonl").read_text(encoding="utf-8").splitlines()
    queries = [json.loads(x) for x in lines]
    ids = {a["id"] for a in samples.knowledge_articles()}
    assert len(queries) >= 50
    for q in queries:
        assert q["q"] not in seen
        assert q["expected"] in ids


def test_trading_days_skip_weekends_and_holidays() -> None:
    assert not td.is_trading_day(dt.date(2026, 10, 1))  # National Day
    assert not td.is_trading_day(dt.date(2026, 10, 10))  # a Saturday, even if a 调休 workday
    assert td.is_trading_day(dt.date(2026, 12, 3))
    # The Monday after National Day week: the last trading day before it is 30 September.
    assert td.previous_trading_day(dt.date(2026, 10, 8)) == dt.date(2026, 9, 30)
    assert td.add_trading_days(dt.date(2026, 9, 30), 1) == dt.date(2026, 10, 8)


def test_a_nav_is_current_from_the_last_trading_day_before_today() -> None:
    """On Monday the Friday NAV is current and Thursday's is stale; after a holiday week the
    NAV of the last day before it stays current."""
    monday = _ms(2026, 11, 30)
    assert td.nav_is_current("2026-11-27", monday)  # Friday
    assert not td.nav_is_current("2026-11-26", monday)
    assert td.nav_is_current("2026-09-30", _ms(2026, 10, 8))
    assert not td.nav_is_current("2026-09-29", _ms(2026, 10, 8))
    assert not td.nav_is_current("not a date", monday)
    # QDII: priced a trading day later.
    assert td.nav_is_current("2026-11-26", monday, "QDII")


def test_a_year_the_calendar_does_not_know_is_weekdays_only() -> None:
    """Conservative: a holiday unknown to the package can only make a NAV look older."""
    assert td.is_trading_day(dt.date(2027, 1, 1))  # a Friday; its holiday is not yet published
    assert not td.is_trading_day(dt.date(2027, 1, 2))


def test_article_and_fund_bodies_are_validated() -> None:
    art = models.parse_article(
        "kb-1",
        {
            "title": "如何修改手机号",
            "body": "……",
            "category": "account",
            "owner": "ops",
            "action": {"label": "修改", "url": "rtfund://account/phone"},
        },
    )
    assert art["action"]["url"] == "rtfund://account/phone" and art["channels"] == []
    with pytest.raises(SchemaError) as e:
        models.parse_article(
            "kb-1",
            {
                **{k: v for k, v in art.items() if k != "id"},
                "action": {"label": "x", "url": "javascript:1"},
            },
        )
    assert e.value.field == "action.url"
    body = {
        "name": "融通债券A",
        "type": "债券型",
        "risk": "R2",
        "nav": {"value": 1.1, "date": "2026-12-02", "source": "TA"},
    }
    assert models.parse_fund("161603", body)["nav"]["value"] == 1.1
    for bad, field in (
        ({**body, "risk": "R9"}, "risk"),
        ({**body, "nav": {**body["nav"], "date": "02/12/2026"}}, "nav.date"),
        ({**body, "nav": {"value": 1.1, "date": "2026-12-02"}}, "nav.source"),
    ):
        with pytest.raises(SchemaError) as e:
            models.parse_fund("161603", bad)
        assert e.value.field == field
    with pytest.raises(SchemaError):
        models.parse_fund("16160", body)


def test_sample_funds_are_marked_and_current() -> None:
    now = _ms(2026, 12, 3)
    funds = samples.sample_funds(now)
    assert funds and all(f["sample"] and f["nav"]["source"] == samples.SAMPLE_SOURCE for f in funds)
    assert all(td.nav_is_current(f["nav"]["date"], now) for f in funds)
    for f in funds:
        models.parse_fund(f["code"], {k: v for k, v in f.items() if k != "code"})
