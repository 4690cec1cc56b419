"""The analytics stage: history for the heat map, surge alerts, figures for review.

    cs.messages.v1   every classified message -> a row in the history store (heat map);
                     its (category, fund) and (intent, fund) surge windows in Redis, judged
                     against the hour-of-week baselines (streams/analytics/surge.py);
                     a surge -> {"type": "surge", ...} on cs.alerts.v1 and GET /v1/alerts
    cs.feedback.v1   survey answers -> the history store (CSAT over time, the review report)
    cs.tasks.v1      callbacks and follow-ups -> the history store
    cs.audit.v1      an erased customer's rows leave the history store
    cs.agent-events.v1  answers and resolves -> live figures (service level, handle time);
                     calls hung up while waiting (cs.messages.v1) -> abandonment; survey
                     answers -> CSAT (router/figures.py)
    timer (10 s)     finished hours folded into the baselines (one worker per hour: a latch),
                     history older than 90 days pruned (hourly)

Windows use event time (the gateway's received_at), so replayed traffic is judged as it was
first seen. The store is written off the event loop (asyncio.to_thread).
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

import structlog

from router.figures import Figures, short_abandon_ms
from router.registry import Registry
from schemas import envelope, events, topics
from schemas.envelope import Envelope, now_ms
from schemas.errors import UnknownEventType
from schemas.payloads import SurgeDetected, envelope_of
from session import keys
from session.history import History
from session.identity import keyed_digest
from streams.analytics import surge
from streams.analytics.surge import Baseline, SurgeParams
from streams.consume import Outbox

log = structlog.get_logger(__name__)

STAGE_MESSAGES = "analytics"
STAGE_FEEDBACK = "analytics-feedback"
STAGE_TASKS = "analytics-tasks"
STAGE_AUDIT = "analytics-audit"
STAGE_AGENT_EVENTS = "analytics-agent-events"
SOURCE = "omnirouter/worker/analytics"
HOUR_KEEP_S = 9 * 86_400


def decode_any(event: Any) -> Envelope:
    return envelope.decode(event.value)


def decode_audit(event: Any) -> Envelope:
    """cs.audit.v1 has no other reader: a type it does not carry is dead-lettered here."""
    env = envelope.decode(event.value)
    if env.type not in (events.CUSTOMER_ERASED, events.RECOMMENDATION_MADE):
        raise UnknownEventType(f"cs.audit.v1 does not carry {env.type!r}")
    return env


def _ms(iso: str | None) -> int:
    if not iso:
        return now_ms()
    try:
        return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return now_ms()


def call_ended(env: Envelope) -> str | None:
    """The customer of a call that just ended (a hang-up: abandoned if still waiting)."""
    d = env.data
    if env.type != events.MESSAGE_CLASSIFIED or (d.get("call") or {}).get("event") != "ended":
        return None
    return (d.get("customer") or {}).get("id")


def contact_of(env: Envelope) -> dict[str, Any] | None:
    d = env.data
    if env.type != events.MESSAGE_CLASSIFIED:
        return None
    call = d.get("call") or {}
    if call.get("event") in ("started", "ended", "ivr"):
        return None  # call lifecycle, not a question
    a = d.get("analysis") or {}
    ent = a.get("entities") or {}
    funds = ent.get("funds") or []
    fund = (funds[0].get("code") if funds and isinstance(funds[0], dict) else None) or (
        (ent.get("fund_codes") or [None])[0]
    )
    return {
        "event_id": d.get("event_id") or env.id,
        "at": _ms(d.get("received_at")),
        "channel": d.get("channel", ""),
        "category": a.get("category") or "unclear",
        "intent": a.get("intent") if a.get("intent") not in (None, "unknown") else None,
        "fund_code": fund,
        "customer_id": (d.get("customer") or {}).get("id"),
    }


def _str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _opt(v: Any) -> str | None:
    return _str(v) if v else None


def _who(r: dict[str, Any]) -> str:
    """A customer in a window, by digest: distinct counts need no id, and erasure then has
    nothing to find in the windows (the HyperLogLogs keep no ids either)."""
    return keyed_digest(f"who:{r['customer_id'] or r['event_id']}")


def _baseline(raw: bytes | str | None) -> Baseline | None:
    if not raw:
        return None
    mean, _, n = (raw.decode() if isinstance(raw, bytes) else raw).partition(",")
    return Baseline(float(mean), int(n or 0))


class Analytics:
    def __init__(self, registry: Registry, history: History, params: SurgeParams | None = None):
        self.registry = registry
        self.redis = registry.redis
        self.history = history
        self.p = params or SurgeParams()
        self.figures = Figures(self.redis)
        self._pruned_hour = -1

    # -- cs.messages.v1 --------------------------------------------------------------------------

    async def handle_messages(self, items: list[Envelope], out: Outbox) -> None:
        ended = [c for c in (call_ended(env) for env in items) if c]
        if ended:
            await self._abandoned(ended)
        rows = [r for r in (contact_of(env) for env in items) if r is not None]
        if not rows:
            return
        await asyncio.to_thread(self.history.add_contacts, rows)
        await self._surge(rows, out)

    async def _surge(self, rows: list[dict[str, Any]], out: Outbox) -> None:
        by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            for k in surge.key_names(r["category"], r["intent"], r["fund_code"]):
                by_key[k].append(r)
        now = now_ms()
        horizon_ms = self.p.longest_s * 1000 + 60_000
        pipe = self.redis.pipeline(transaction=False)
        ends: dict[str, int] = {}
        first_count: dict[str, int] = {}
        n = 0  # commands queued so far: where each key's window counts land in the results
        for k, rs in by_key.items():
            wk = keys.surge_window(k)
            pipe.zadd(wk, {_who(r): r["at"] for r in rs}, gt=True)
            pipe.zremrangebyscore(wk, "-inf", min(now, max(r["at"] for r in rs)) - horizon_ms)
            pipe.expire(wk, self.p.longest_s * 2)
            end = ends[k] = max(r["at"] for r in rs)
            first_count[k] = n + 3
            for w, _ in self.p.windows:
                pipe.zcount(wk, f"({end - w * 1000}", end)
            n += 3 + len(self.p.windows)
            # One HyperLogLog add per hour and key, with every customer of the batch in it.
            by_hour: dict[int, set[str]] = defaultdict(set)
            for r in rs:
                by_hour[surge.hour_of(r["at"])].add(_who(r))
            for h, who in by_hour.items():
                pipe.pfadd(keys.surge_hour(h, k), *who)
                pipe.expire(keys.surge_hour(h, k), HOUR_KEEP_S)
                pipe.sadd(keys.surge_hour_keys(h), k)
                pipe.expire(keys.surge_hour_keys(h), HOUR_KEEP_S)
            pipe.sadd(keys.surge_keys(), k)
            n += 4 * len(by_hour) + 1
        res = await pipe.execute()
        counts = {
            k: {w: int(res[first_count[k] + j]) for j, (w, _) in enumerate(self.p.windows)}
            for k in by_key
        }
        fields = []
        for k in by_key:
            for h in (surge.hour_of(ends[k]), surge.hour_of(ends[k]) - 1):
                how, hod = surge.slots(h)
                fields += [f"{k}|{how}", f"{k}|{hod}"]
        raw = await self.redis.hmget(keys.surge_baselines(), fields)
        baselines = {f: b for f, v in zip(fields, raw, strict=True) if (b := _baseline(v))}
        for k, rs in by_key.items():
            hourly = surge.per_hour(baselines, k, ends[k], self.p)
            before = surge.per_hour(baselines, k, ends[k] - surge.HOUR_MS, self.p)
            v = surge.judge(k, counts[k], ends[k], hourly, self.p, before)
            if v is not None:
                await self._alert(v, rs, out)

    async def _alert(self, v: surge.Verdict, rs: list[dict[str, Any]], out: Outbox) -> None:
        category = rs[0]["category"]
        fund = v.key.rpartition("|")[2]
        intents = Counter(r["intent"] for r in rs if r["intent"])
        intent = (
            v.key.split("|")[0].removeprefix("intent:")
            if v.key.startswith("intent:")
            else (intents.most_common(1)[0][0] if intents else None)
        )
        at = max(r["at"] for r in rs)
        latch = surge.latch_of(v.key, category)
        if await self.registry.alert_latched("surge", latch):
            return  # raised already: a surge judged again on every batch while it lasts
        convs = await self._samples(v.key, rs)
        alert = SurgeDetected(
            id=f"surge-{latch.replace('|', '-')}-{at}",
            category=category,
            intent=intent,
            fund_code=None if fund == "-" else fund,
            count=v.count,
            baseline=v.baseline,
            window_s=v.window_s,
            at=at,
            sample_conversation_ids=convs,
            score=round(v.count / v.threshold, 2),
        )
        data = envelope_of(alert, source=SOURCE, subject=latch, id=f"{alert.id}.alert")
        if not await self.registry.raise_alert("surge", latch, data.data, self.p.cooldown_s):
            return
        out.emit(topics.ALERTS, latch, data)
        await asyncio.to_thread(self.history.add_alerts, [data.data])
        log.warning(
            "surge.detected",
            key=v.key,
            count=v.count,
            threshold=round(v.threshold, 1),
            baseline=v.baseline,
            window_s=v.window_s,
        )

    async def _samples(self, key: str, rs: list[dict[str, Any]]) -> list[str]:
        """Conversations of the first customers in the window. The session stage reads the
        same records beside this one, so their conversations may be a moment behind: wait
        for them briefly (only when an alert is raised)."""
        customers = [r["customer_id"] for r in rs if r["customer_id"]]
        if len(set(customers)) < self.p.samples:  # earlier ones of the window, from history
            fund = key.rpartition("|")[2]
            earlier = await asyncio.to_thread(
                self.history.query,
                "SELECT customer_id FROM contacts WHERE category = ? AND COALESCE(fund_code, '-')"
                " = ? AND at > ? ORDER BY at DESC LIMIT ?",
                (rs[0]["category"], fund, rs[0]["at"] - self.p.longest_s * 1000, 20),
            )
            customers += [c for (c,) in earlier if c]
        customers = list(dict.fromkeys(customers))[: self.p.samples]
        if not customers:
            return []
        found: list[Any] = []
        for _ in range(20):
            found = await self.redis.mget([keys.customer_current(c) for c in customers])
            if all(found):
                break
            await asyncio.sleep(0.1)
        return [x.decode() if isinstance(x, bytes) else str(x) for x in found if x]

    # -- live figures ----------------------------------------------------------------------------

    async def _abandoned(self, customers: list[str]) -> None:
        """A call that ended while its conversation still waited for an agent: abandoned,
        unless it waited less than the short-abandon threshold."""
        now = now_ms()
        convs = await self.redis.mget([keys.customer_current(c) for c in customers])
        pipe = self.redis.pipeline(transaction=False)
        for c in convs:
            pipe.hmget(
                keys.conversation(_str(c or b"-")),
                ["state", "enqueued_at", "queue", "category", "channel"],
            )
        entries = []
        for state, enq, queue, category, channel in await pipe.execute():
            if _str(state or b"") not in ("open", "waiting", "offered") or not enq:
                continue
            if now - int(float(_str(enq))) < short_abandon_ms():
                continue
            scopes = self.figures.scopes(_opt(queue), _opt(category), _opt(channel))
            entries.append((scopes, "abandoned", 1.0))
        await self.figures.add(entries, now)

    async def handle_agent_events(self, items: list[Envelope], out: Outbox) -> None:
        """Answers (service level) and resolves (handle time) into the live figures."""
        wanted = [e for e in items if e.type in (events.AGENT_ACCEPTED, events.AGENT_RESOLVED)]
        if not wanted:
            return
        pipe = self.redis.pipeline(transaction=False)
        for env in wanted:
            pipe.hmget(
                keys.conversation(env.data["conversation_id"]),
                [
                    "answer_wait_ms",
                    "assigned_at",
                    "resolved_at",
                    "queue",
                    "category",
                    "assigned_channel",
                    "created_at",
                    "customer_id",
                ],
            )
        entries: list[tuple[list[str], str, float]] = []
        convs: list[dict[str, Any]] = []
        for env, (wait, assigned, resolved, queue, category, channel, created, cust) in zip(
            wanted, await pipe.execute(), strict=True
        ):
            convs.append(
                {
                    "conversation_id": env.data["conversation_id"],
                    "customer_id": _opt(cust),
                    "channel": _opt(channel),
                    "category": _opt(category),
                    "agent_id": env.data.get("agent_id"),
                    "created_at": int(float(_str(created))) if created else None,
                    "assigned_at": int(float(_str(assigned))) if assigned else None,
                    "resolved_at": int(float(_str(resolved)))
                    if resolved and env.type == events.AGENT_RESOLVED
                    else None,
                }
            )
            scopes = self.figures.scopes(_opt(queue), _opt(category), _opt(channel))
            q = scopes[0].removeprefix("queue:")
            if env.type == events.AGENT_ACCEPTED and wait is not None:
                entries.append((scopes, "answered", 1.0))
                if float(_str(wait)) <= self.figures.sl_of(q) * 1000:
                    entries.append((scopes, "answered_in_sl", 1.0))
            elif env.type == events.AGENT_RESOLVED and assigned and resolved:
                entries.append((scopes, "handled", 1.0))
                entries.append((scopes, "handle_ms", float(_str(resolved)) - float(_str(assigned))))
        await self.figures.add(entries)
        await asyncio.to_thread(self.history.put_conversations, convs)

    # -- cs.feedback.v1, cs.tasks.v1 -------------------------------------------------------------

    async def handle_feedback(self, items: list[Envelope], out: Outbox) -> None:
        rows = [env.data for env in items if env.type == events.SURVEY_ANSWERED]
        if rows:
            await asyncio.to_thread(self.history.add_surveys, rows)
            entries: list[tuple[list[str], str, float]] = []
            for r in rows:
                scopes = self.figures.scopes(None, r.get("category"), r.get("channel"))
                entries.append((scopes, "csat_n", 1.0))
                if r["score"] >= 4:
                    entries.append((scopes, "csat_good", 1.0))
            await self.figures.add(entries)

    async def handle_tasks(self, items: list[Envelope], out: Outbox) -> None:
        rows = [
            env.data["task"]
            for env in items
            if env.type in (events.TASK_CREATED, events.TASK_UPDATED)
            and isinstance(env.data.get("task"), dict)
        ]
        if rows:
            await asyncio.to_thread(self.history.put_tasks, rows)

    async def handle_audit(self, items: list[Envelope], out: Outbox) -> None:
        """An erased customer leaves the history too (cs.audit.v1, session/privacy.py)."""
        for env in items:
            if env.type == events.CUSTOMER_ERASED:
                ids = [env.data["customer_id"], *(env.data.get("anonymous_ids") or [])]
                await asyncio.to_thread(self.history.erase_customers, ids)

    # -- timer -----------------------------------------------------------------------------------

    async def tick(self, out: Outbox) -> None:
        now = now_ms()
        current = surge.hour_of(now)
        for h in range(current - 24, current):
            if await self.redis.set(keys.surge_closed(h), "1", nx=True, ex=HOUR_KEEP_S):
                await self._close(h)
        if current != self._pruned_hour:
            self._pruned_hour = current
            await asyncio.to_thread(self.history.prune, now)

    async def _close(self, h: int) -> None:
        known = [
            x.decode() if isinstance(x, bytes) else str(x)
            for x in await self.redis.smembers(keys.surge_keys())
        ]
        if not known:
            return
        pipe = self.redis.pipeline(transaction=False)
        for k in known:
            pipe.pfcount(keys.surge_hour(h, k))
        counts = dict(zip(known, await pipe.execute(), strict=True))
        how, hod = surge.slots(h)
        fields = [f"{k}|{s}" for k in known for s in (how, hod)]
        raw = await self.redis.hmget(keys.surge_baselines(), fields)
        baselines = {f: _baseline(v) or Baseline() for f, v in zip(fields, raw, strict=True)}
        surge.close_hour(baselines, set(known), counts, h, self.p)
        await self.redis.hset(
            keys.surge_baselines(),
            mapping={f: f"{b.mean:.4f},{b.n}" for f, b in baselines.items()},
        )
