"""Routing policy: who may take a conversation and in which order agents are tried."""

from __future__ import annotations

from router.policy import AgentView, Job, eligible, priority, queue_for, rank


def agent(aid: str, **kw: object) -> AgentView:
    base: dict[str, object] = {
        "skills": {"product": 3},
        "capacity": {"chat": 2, "phone": 1},
        "load": {},
    }
    base.update(kw)
    return AgentView(id=aid, **base)  # type: ignore[arg-type]


def job(**kw: object) -> Job:
    base: dict[str, object] = {
        "conversation_id": "c",
        "customer_id": "C1",
        "category": "product",
        "channel": "chat",
        "priority": 10,
    }
    base.update(kw)
    return Job(**base)  # type: ignore[arg-type]


def test_full_busy_unskilled_and_declined_agents_are_not_eligible() -> None:
    j = job()
    assert eligible(j, agent("a"))
    assert not eligible(j, agent("a", load={"chat": 2}))
    assert not eligible(j, agent("a", status="away"))
    assert not eligible(j, agent("a", skills={"technical": 5}))
    assert not eligible(job(declined=frozenset({"a"})), agent("a"))
    assert not eligible(j, agent("a", phone_excludes_chat=True, load={"phone": 1}))
    assert not eligible(job(language="en"), agent("a"))


def test_unclear_goes_to_anyone_with_a_skill() -> None:
    assert eligible(job(category="unclear"), agent("a", skills={"technical": 1}))
    assert not eligible(job(category="unclear"), agent("a", skills={}))


def test_order_is_last_agent_then_advisor_then_skill_then_load() -> None:
    agents = [
        agent("expert", skills={"product": 5}),
        agent("advisor", skills={"product": 1}, advisor_for=frozenset({"C1"})),
        agent("last", skills={"product": 1}),
        agent("busy-expert", skills={"product": 5}, load={"chat": 1}),
    ]
    assert [a.id for a in rank(job(last_agent="last"), agents)] == [
        "last",
        "advisor",
        "expert",
        "busy-expert",
    ]
    assert rank(job(), agents)[0].id == "advisor"
    assert [a.id for a in rank(job(customer_id="C2"), agents)] == [
        "expert",
        "busy-expert",
        "advisor",
        "last",
    ]


def test_priority_rises_with_anger_segment_and_voice() -> None:
    calm = priority("product")
    assert priority("product", negative=True, anger=True) > calm
    assert priority("product", segment="hnw") > calm
    assert priority("complaint") > calm
    assert priority("product", channel="phone") > priority(
        "complaint", anger=True, negative=True, segment="hnw"
    )


def test_unknown_category_waits_in_unclear_queue() -> None:
    assert queue_for("product") == "product"
    assert queue_for("weather") == "unclear"
