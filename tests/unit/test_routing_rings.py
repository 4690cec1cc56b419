"""Bullseye rings, sticky window, preferred hold, transfer pin, hours and queue config."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.dispatch import _Pool
from router.policy import AgentView, Job, bot_allowed, candidates, preferred, queue_score
from router.queues import Hours, QueueBook, QueueConfig, Step

NOW = 1_800_000_000_000
MIN = 60_000
STICKY = 30 * MIN


def agent(aid: str, level: int = 3, **kw: object) -> AgentView:
    base: dict[str, object] = {
        "skills": {"product": level},
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
        "queue_since": NOW,
        "enqueued_at": NOW,
    }
    base.update(kw)
    return Job(**base)  # type: ignore[arg-type]


Q = QueueConfig("product", "product", (Step(0, 4), Step(30, 2), Step(90, 1)), preferred_hold_s=15)


def ids(agents: list[AgentView]) -> list[str]:
    return [a.id for a in agents]


def test_requirements_relax_step_by_step_while_the_customer_waits() -> None:
    """At first only level >= 4 fits; after 30 s level 2; after 90 s anyone with the skill."""
    pool = [agent("l1", 1), agent("l2", 2), agent("l4", 4)]
    assert ids(candidates(job(), pool, Q, NOW, STICKY)) == ["l4"]
    assert ids(candidates(job(), pool, Q, NOW + 29_999, STICKY)) == ["l4"]
    assert ids(candidates(job(), pool, Q, NOW + 30_000, STICKY)) == ["l4", "l2"]
    assert ids(candidates(job(), pool, Q, NOW + 90_000, STICKY)) == ["l4", "l2", "l1"]


def test_relaxation_counts_time_in_the_current_queue() -> None:
    """A conversation that overflowed into a queue starts that queue's rings from the centre."""
    late_arrival = job(enqueued_at=NOW - 10 * MIN, queue_since=NOW)
    assert ids(candidates(late_arrival, [agent("l2", 2)], Q, NOW + 1000, STICKY)) == []


def test_last_agent_within_window_holds_the_conversation_even_when_busy() -> None:
    """Inside the preferred hold, a returning conversation waits for its last agent alone
    (sticky), even if that agent is full right now; after the hold anyone who fits may take it."""
    busy_last = agent("last", 4, load={"chat": 2})
    other = agent("other", 5)
    j = job(last_agent="last", last_agent_at=NOW - MIN)
    assert candidates(j, [busy_last, other], Q, NOW + 1000, STICKY) == []
    assert ids(candidates(j, [busy_last, other], Q, NOW + 15_000, STICKY)) == ["other"]
    free_last = agent("last", 1)
    # Continuity beats the level requirement: level 1 would not fit ring 0 otherwise.
    assert ids(candidates(j, [free_last, other], Q, NOW + 1000, STICKY)) == ["last"]
    assert ids(candidates(j, [free_last, other], Q, NOW + 15_000, STICKY)) == ["last", "other"]


def test_last_agent_outside_the_sticky_window_is_just_another_agent() -> None:
    """After the sticky window the last agent has no precedence and no hold."""
    j = job(last_agent="last", last_agent_at=NOW - STICKY - 1)
    assert preferred(j, NOW, STICKY) == []
    pool = [agent("last", 4), agent("best", 5)]
    assert ids(candidates(j, pool, Q, NOW, STICKY)) == ["best", "last"]


def test_dedicated_advisor_comes_after_last_agent_and_before_skill() -> None:
    """High-net-worth customers go to their advisor when the last agent is not around."""
    pool = [agent("expert", 5), agent("adv", 4, advisor_for=frozenset({"C1"}))]
    assert ids(candidates(job(advisor="adv"), pool, Q, NOW, STICKY)) == ["adv"]
    j = job(advisor="adv", last_agent="last", last_agent_at=NOW)
    pool2 = [*pool, agent("last", 4)]
    assert ids(candidates(j, pool2, Q, NOW, STICKY)) == ["last", "adv"]


def test_declined_preferred_agent_does_not_hold_the_conversation() -> None:
    """An advisor who rejected the offer is skipped at once, no hold."""
    j = job(advisor="adv", declined=frozenset({"adv"}))
    pool = [agent("adv", 5), agent("other", 4)]
    assert ids(candidates(j, pool, Q, NOW, STICKY)) == ["other"]


def test_transfer_to_named_agent_goes_only_to_that_agent_until_declined() -> None:
    """A pinned conversation waits for its target; once the target declines it is normal."""
    pool = [agent("target", 1, load={"chat": 2}), agent("other", 5)]
    assert candidates(job(pinned_agent="target"), pool, Q, NOW + 10 * MIN, STICKY) == []
    freed = [agent("target", 1), agent("other", 5)]
    assert ids(candidates(job(pinned_agent="target"), freed, Q, NOW, STICKY)) == ["target"]
    j = job(pinned_agent="target", declined=frozenset({"target"}))
    assert ids(candidates(j, freed, Q, NOW, STICKY)) == ["other"]


def test_unclear_queue_takes_any_skill_and_ties_break_on_load_then_idle_time() -> None:
    """Unclear conversations go to anyone with a skill; less loaded first, then longest idle."""
    unclear = QueueBook().get("unclear")
    pool = [
        agent("busy", 5, skills={"technical": 5}, load={"chat": 1}),
        agent("recent", 5, skills={"technical": 5}, last_offer_at=NOW - 1000),
        agent("idle", 5, skills={"technical": 5}, last_offer_at=NOW - 9000),
        agent("none", 0, skills={}),
    ]
    got = ids(candidates(job(category="unclear"), pool, unclear, NOW, STICKY))
    assert got == ["idle", "recent", "busy"]


def test_aging_lets_a_low_priority_conversation_overtake_newer_urgent_ones() -> None:
    """Priority is a head start in waiting time, so an old calm conversation eventually
    comes before a new angry one: nobody starves."""
    head = 10_000
    calm_old = queue_score(NOW - 30 * MIN, 10, head)
    angry_new = queue_score(NOW, 45, head)
    angry_new_soon = queue_score(NOW - 30 * MIN + 1, 45, head)
    assert calm_old < angry_new
    assert angry_new_soon < calm_old


def test_complaints_never_go_to_the_bot() -> None:
    assert not bot_allowed("complaint")
    assert bot_allowed("product")


def test_business_hours_in_shanghai_time() -> None:
    """A queue open 09:00-18:00 Monday to Friday, UTC+8, is closed at night and on Sunday."""
    h = Hours(open="09:00", close="18:00", days=(1, 2, 3, 4, 5), utc_offset_min=480)

    def at(y: int, mo: int, d: int, hh: int, mm: int) -> int:
        local = dt.datetime(y, mo, d, hh, mm, tzinfo=dt.timezone(dt.timedelta(hours=8)))
        return int(local.timestamp() * 1000)

    assert h.is_open(at(2026, 11, 23, 9, 0))  # Monday
    assert not h.is_open(at(2026, 11, 23, 8, 59))
    assert not h.is_open(at(2026, 11, 23, 18, 0))
    assert not h.is_open(at(2026, 11, 22, 12, 0))  # Sunday


def test_default_queues_cover_every_category_and_complaints_start_with_experts() -> None:
    book = QueueBook()
    assert set(book.queues) == {
        "product",
        "transaction",
        "account",
        "complaint",
        "technical",
        "unclear",
    }
    assert book.get("complaint").min_level(0) >= 4
    assert book.queue_for("weather") == "unclear"
    for q in book.queues.values():
        assert q.backup is None or q.backup in book.queues


def test_queue_file_overrides_one_queue_and_rejects_bad_backups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OMNIROUTER_QUEUES_FILE replaces the named queues only; a backup must be a queue."""
    book = QueueBook.from_mapping(
        {
            "queues": {
                "product": {
                    "steps": [{"after_s": 0, "min_level": 5}, {"after_s": 10, "min_level": 1}],
                    "hours": {"open": "08:30", "close": "21:00"},
                    "overflow_after_s": 60,
                },
                "vip": {"skill": "account", "steps": [{"after_s": 0, "min_level": 4}]},
            }
        }
    )
    assert book.get("product").min_level(9_999) == 5
    assert book.get("product").min_level(10_000) == 1
    assert book.get("product").hours == Hours(open="08:30", close="21:00")
    assert book.get("product").backup == "unclear"  # kept from the default
    assert book.get("vip").skill == "account"
    assert book.get("transaction") == QueueBook().get("transaction")
    with pytest.raises(ValueError, match="backup"):
        QueueBook.from_mapping({"queues": {"product": {"backup": "nowhere"}}})
    with pytest.raises(ValueError, match="after_s 0"):
        QueueBook.from_mapping({"queues": {"product": {"steps": [{"after_s": 5, "min_level": 1}]}}})
    path = tmp_path / "q.json"
    path.write_text(json.dumps({"queues": {"account": {"overflow_after_s": 42}}}))
    monkeypatch.setenv("OMNIROUTER_QUEUES_FILE", str(path))
    assert QueueBook.from_env().get("account").overflow_after_s == 42


random_agent = st.builds(
    lambda i, lvl, load, last, lang: agent(
        f"a{i}",
        skills={"product": lvl, "account": 6 - lvl},
        load={"chat": load},
        last_offer_at=last,
        languages=lang,
    ),
    st.integers(0, 30),
    st.integers(1, 5),
    st.integers(0, 2),
    st.integers(0, 3),
    st.sampled_from([("zh",), ("zh", "en"), ("en",)]),
)


@settings(max_examples=200, deadline=None)
@given(
    pool=st.lists(random_agent, max_size=12, unique_by=lambda a: a.id),
    takes=st.lists(st.integers(0, 11), max_size=6),
    waited=st.sampled_from([0, 30_000, 90_000]),
    lang=st.sampled_from(["zh", "en"]),
)
def test_drain_index_orders_agents_exactly_like_the_policy(
    pool: list[AgentView], takes: list[int], waited: int, lang: str
) -> None:
    """The drain's pre-sorted index picks the same agents in the same order as
    policy.candidates, also after offers made in the cycle changed some loads."""
    p = _Pool(pool)
    for t in takes:
        if pool and p.room.get("chat", {}).get(pool[t % len(pool)].id):
            p.took(pool[t % len(pool)].id, "chat")
    j = job(language=lang, queue_since=NOW - waited, customer_id="nobody")
    expected = candidates(j, p.with_room("chat"), Q, NOW, STICKY)
    assert ids(p.best(j, "product", Q.min_level(waited), 99)) == ids(expected)


@settings(max_examples=100, deadline=None)
@given(
    pool=st.lists(random_agent, max_size=12, unique_by=lambda a: a.id),
    takes=st.lists(st.integers(0, 11), max_size=6),
)
def test_drain_index_for_the_unclear_queue_matches_the_policy(
    pool: list[AgentView], takes: list[int]
) -> None:
    """For unclear conversations the index orders by load then idle time, like the policy."""
    p = _Pool(pool)
    for t in takes:
        if pool and p.room.get("chat", {}).get(pool[t % len(pool)].id):
            p.took(pool[t % len(pool)].id, "chat")
    unclear = QueueBook().get("unclear")
    j = job(category="unclear", customer_id="nobody")
    expected = candidates(j, p.with_room("chat"), unclear, NOW, STICKY)
    assert ids(p.best(j, None, 1, 99)) == ids(expected)


def test_agent_profile_keeps_phone_excludes_chat_and_transfer_body_is_checked() -> None:
    """phone_excludes_chat reaches the registry (it used to be dropped); a transfer names
    exactly one target."""
    from schemas.errors import SchemaError
    from schemas.models import parse_agent, parse_transfer

    body = {"skills": {"product": 3}, "capacity": {"chat": 2, "phone": 1}}
    assert parse_agent("a1", {**body, "phone_excludes_chat": True})["phone_excludes_chat"]
    assert not parse_agent("a1", body)["phone_excludes_chat"]
    with pytest.raises(SchemaError) as bad:
        parse_agent("a1", {**body, "phone_excludes_chat": "yes"})
    assert bad.value.field == "phone_excludes_chat"
    assert parse_transfer({"agent_id": "a1", "to_agent": "a2", "note": "n"})["to_agent"] == "a2"
    for wrong in ({"agent_id": "a1"}, {"agent_id": "a1", "to_agent": "a2", "to_queue": "x"}):
        with pytest.raises(SchemaError):
            parse_transfer(wrong)
