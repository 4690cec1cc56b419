"""The feedback stage's pure decisions: which answers call for a callback, who gets it, and
that no survey or task script can move a conversation."""

from __future__ import annotations

from pathlib import Path

from router.policy import AgentView
from router.tasks import pick_agent
from streams.feedback import rules

ROOT = Path(__file__).resolve().parents[2]


def test_low_scores_and_complaint_comments_open_callbacks() -> None:
    assert rules.callback_reason(1, "") == "satisfaction score 1/5"
    assert rules.callback_reason(2, "") is not None
    assert rules.callback_reason(3, "") is None
    assert rules.callback_reason(5, "很满意") is None
    assert "comment mentions" in (rules.callback_reason(4, "客服态度很差") or "")
    assert rules.callback_reason(5, "客服态度很好") is None
    assert rules.callback_reason(4, "没有不满，谢谢") is None
    # Praise the question classifier files under 投诉与建议 is not a complaint.
    assert (
        rules.callback_reason(4, "很满意", {"category": "complaint", "sentiment": "positive"})
        is None
    )
    assert rules.callback_reason(4, "…", {"category": "complaint", "sentiment": "negative"})
    assert rules.callback_reason(3, "!!!", {"anger": True})


def test_callbacks_go_to_the_most_skilled_free_agent_not_the_one_rated() -> None:
    a = AgentView("a", {"complaint": 5}, {"chat": 3}, {})
    b = AgentView("b", {"complaint": 3}, {"chat": 3}, {})
    c = AgentView("c", {"product": 5}, {"chat": 3}, {})
    assert pick_agent([a, b, c], "complaint") == a
    assert pick_agent([a, b, c], "complaint", avoid=["a"]) == b
    assert pick_agent([a], "complaint", avoid=["a"]) == a  # nobody else: still called back
    assert pick_agent([a, b], "complaint", declined=["a", "b"]) is None
    assert pick_agent([c], "complaint") is None


def test_survey_and_task_scripts_never_write_a_conversation_state() -> None:
    for path in [*ROOT.glob("session/lua/survey_*.lua"), *ROOT.glob("router/lua/task_*.lua")]:
        hset = [line for line in path.read_text().splitlines() if "HSET" in line]
        assert not [line for line in hset if "'state'" in line], path.name


def test_mail_answers_start_with_a_digit() -> None:
    from channels.feedback import _MAIL_DIGIT

    assert _MAIL_DIGIT.match("4 回复很及时").group(1) == "4"  # type: ignore[union-attr]
    assert _MAIL_DIGIT.match("５分").group(1) == "５"  # type: ignore[union-attr]
    assert _MAIL_DIGIT.match("12 点前能到账吗") is None
    assert _MAIL_DIGIT.match("我想问一下") is None
