"""The review page from the history store: `omnirouter report` writes the same page and data
the gateway serves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from session.history import History
from streams import cli


def test_report_command_writes_the_page_and_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "a.sqlite"
    monkeypatch.setenv("OMNIROUTER_ANALYTICS_DB", str(db))
    import time

    now = int(time.time() * 1000)
    h = History(db)
    h.add_contacts(
        [
            {
                "event_id": "e1",
                "at": now - 3_600_000,
                "channel": "app",
                "category": "transaction",
                "intent": "redemption_arrival",
                "fund_code": "161606",
            }
        ]
    )
    h.add_surveys(
        [
            {
                "survey_id": "sv-c1",
                "conversation_id": "c1",
                "score": 2,
                "comment": "太慢",
                "answered_at": now - 1000,
            }
        ]
    )
    h.put_tasks(
        [
            {
                "id": "cb-sv-c1",
                "kind": "callback",
                "conversation_id": "c1",
                "state": "open",
                "created_at": now - 900,
            }
        ]
    )
    assert cli.main(["report", "--since", "7d", "--out", str(tmp_path / "out")]) == 0
    page = (tmp_path / "out" / "review.html").read_text()
    data = json.loads((tmp_path / "out" / "review.json").read_text())
    assert "<svg" in page and 'data-testid="heatmap"' in page and "cb-sv-c1" in page
    assert data["csat"]["scores"]["2"] == 1 and data["low_scores"][0]["task_id"] == "cb-sv-c1"
    assert data["top_intents"] == [{"intent": "redemption_arrival", "count": 1}]
