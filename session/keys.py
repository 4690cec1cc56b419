"""Every Redis key of omnirouter, in one place, with the structure behind it.

All keys start with ``{or:v1}:``; a change of layout bumps the version segment so old and new
code never read each other's data by mistake. The braces make ``or:v1`` a Redis Cluster hash
tag: every key of one deployment hashes to the same slot, so a Lua script may touch a key it
could only discover inside (a conversation named by an offer, an agent's offers) without a
CROSSSLOT error. Scripts get every key their caller can name in KEYS (built here); the few
they derive inside are listed, with the reason, in tests/unit/test_lua_keys.py. The cost: one
deployment lives on one Cluster master (Cluster-safe, not sharded; docs/architecture.md).
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "{or:v1}"


def dedupe(channel: str, channel_message_id: str) -> str:
    """STRING event_id (or ``pending:<event_id>`` while the broker has not acknowledged)."""
    return f"{PREFIX}:dedupe:{channel}:{channel_message_id}"


def identity(kind: str, value: str) -> str:
    """HASH link of a normalized contact to a customer: customer_id, evidence, at (ms), source.

    evidence is ``directory`` for contacts the CRM verified, ``login:<kind>`` for a web
    visitor id seen in the same message as that verified contact (expires; see docs/session.md).
    """
    return f"{PREFIX}:ident:{kind}:{value}"


def customer_identities(customer_id: str) -> str:
    """SET of identity keys (full names) linked to the customer: listing and erasure."""
    return f"{PREFIX}:cust:{customer_id}:idents"


def customer_aliases(customer_id: str) -> str:
    """SET of anonymous customer ids whose conversations were folded into this customer."""
    return f"{PREFIX}:cust:{customer_id}:aliases"


def customer_merged(anonymous_id: str) -> str:
    """STRING customer id an anonymous id was folded into; late events of it follow (TTL)."""
    return f"{PREFIX}:cust:{anonymous_id}:merged"


def thread(message_id: str) -> str:
    """STRING conversation id of an email Message-ID (inbound or outbound) in its thread."""
    return f"{PREFIX}:thread:{message_id}"


def call(call_id: str) -> str:
    """STRING conversation id of a phone call id from the telephony platform."""
    return f"{PREFIX}:call:{call_id}"


def conversation_refs(conversation_id: str) -> str:
    """SET of keys that point at the conversation (thread, call, dedupe keys): erasure."""
    return f"{PREFIX}:conv:{conversation_id}:refs"


def customer(customer_id: str) -> str:
    """HASH directory record: name, segment, risk_tolerance, risk_assessed_at, advisor, verified (JSON),
    updated_at, links (JSON list of the identity keys the record made)."""
    return f"{PREFIX}:customer:{customer_id}"


def customer_current(customer_id: str) -> str:
    """STRING id of the customer's current (open, or resolved and reopenable) conversation."""
    return f"{PREFIX}:cust:{customer_id}:open"


def customer_conversations(customer_id: str) -> str:
    """ZSET conversation ids scored by creation time (ms)."""
    return f"{PREFIX}:cust:{customer_id}:convs"


def conversation(conversation_id: str) -> str:
    """HASH id, customer_id, state, channel, category, priority, queue, agent_id, offer_id, …"""
    return f"{PREFIX}:conv:{conversation_id}"


def timeline(conversation_id: str) -> str:
    """LIST of JSON entries: customer, bot and agent messages, channel switches, notes."""
    return f"{PREFIX}:conv:{conversation_id}:timeline"


def seen(conversation_id: str) -> str:
    """SET of event ids already applied to the conversation (idempotent redelivery)."""
    return f"{PREFIX}:conv:{conversation_id}:seen"


def declined(conversation_id: str) -> str:
    """ZSET agent id -> ms until which that agent is not offered this conversation again."""
    return f"{PREFIX}:conv:{conversation_id}:declined"


def agents() -> str:
    """SET of every registered agent id."""
    return f"{PREFIX}:agents"


def agents_available() -> str:
    """SET of agent ids whose status is available."""
    return f"{PREFIX}:agents:available"


def agent(agent_id: str) -> str:
    """HASH profile: name, skills (JSON), languages (JSON), advisor_for (JSON), status, …"""
    return f"{PREFIX}:agent:{agent_id}"


def agent_capacity(agent_id: str) -> str:
    """HASH channel -> how many conversations of that channel the agent may hold."""
    return f"{PREFIX}:agent:{agent_id}:cap"


def agents_load() -> str:
    """HASH ``<agent_id>|<channel>`` -> conversations held on that channel (offered, assigned
    or in wrap-up); a field is deleted at zero. One hash for all agents, so a routing cycle
    reads every agent's load in one HGETALL instead of one round trip per agent."""
    return f"{PREFIX}:agents:load"


def agents_last_offer() -> str:
    """HASH agent id -> ms of the last offer made to it (longest idle goes first)."""
    return f"{PREFIX}:agents:last_offer"


def agents_version() -> str:
    """STRING counter bumped on every profile change; workers cache profiles until it moves."""
    return f"{PREFIX}:agents:version"


def wrapups() -> str:
    """ZSET ``<agent_id>|<channel>|<conversation_id>|<seq>`` -> ms when the wrap-up after a resolve
    ends and the slot it still holds is freed (router/lua/wrapup.lua)."""
    return f"{PREFIX}:wrapups"


def queue_served(name: str) -> str:
    """ZSET offer id -> ms, offers made from the queue in the last 15 minutes (service rate
    for the estimated wait)."""
    return f"{PREFIX}:queue:{name}:served"


def alerts() -> str:
    """LIST of JSON alert events, newest first, capped (GET /v1/alerts)."""
    return f"{PREFIX}:alerts"


def alert_latch(kind: str, subject: str) -> str:
    """STRING with a TTL: an alert of this kind for this subject was raised recently, so
    several workers seeing the same condition raise it once."""
    return f"{PREFIX}:alert:{kind}:{subject}"


def agent_offers(agent_id: str) -> str:
    """SET of the agent's pending offer ids."""
    return f"{PREFIX}:agent:{agent_id}:offers"


def agent_conversations(agent_id: str) -> str:
    """SET of conversation ids assigned to the agent."""
    return f"{PREFIX}:agent:{agent_id}:convs"


def offer(offer_id: str) -> str:
    """HASH conversation_id, agent_id, channel, expires_at, created_at, customer_id."""
    return f"{PREFIX}:offer:{offer_id}"


def offers_by_expiry() -> str:
    """ZSET offer id -> expiry time (ms), scanned by the workers' expiry timer."""
    return f"{PREFIX}:offers:expiry"


def queue(name: str) -> str:
    """ZSET conversation id -> score (enqueue ms minus priority head start): lowest first."""
    return f"{PREFIX}:queue:{name}"


def queue_lease(name: str) -> str:
    """STRING token of the worker draining this queue now, with a TTL (PX): one drainer per
    queue at a time, so workers do not lose their claims to each other."""
    return f"{PREFIX}:queue:{name}:lease"


def queues() -> str:
    """SET of queue names that have ever held a conversation."""
    return f"{PREFIX}:queues"


def worker_ready(worker_id: str) -> str:
    """STRING set with a TTL while a worker holds partitions (readiness for tests and ops)."""
    return f"{PREFIX}:worker:{worker_id}:ready"


def agent_frames(agent_id: str) -> str:
    """STREAM of frames for an agent's desktop (offers, assignments, messages), capped.

    The gateway reads these to push to sockets; a reconnecting desktop resumes from the last
    frame id it saw. cs.assignments.v1 carries the same events for every other consumer.
    """
    return f"{PREFIX}:agent:{agent_id}:frames"


def visitor_frames(visitor_id: str) -> str:
    """STREAM of frames for a web chat visitor (agent replies, delivery notes), capped.

    The delivery service appends; every gateway instance reads the streams of the visitors
    connected to it, so a reply reaches the socket wherever it is, and a widget that
    reconnects with `?since=<frame id>` receives what it missed.
    """
    return f"{PREFIX}:visitor:{visitor_id}:frames"


def visitor_sockets(visitor_id: str) -> str:
    """STRING count of the visitor's open chat sockets on every gateway (with a TTL), so
    closing one of two tabs is not leaving (channels/chat/presence.py)."""
    return f"{PREFIX}:visitor:{visitor_id}:sockets"


def visitors_gone() -> str:
    """ZSET visitor id -> when its grace ends (ms): the last socket closed, or the visitor
    said it leaves (then now). Back in time: removed. Due: the worker closes the visitor's
    waiting conversation as abandoned (router/abandons.py)."""
    return f"{PREFIX}:visitors:gone"


def visitors_left_at() -> str:
    """HASH visitor id -> when it left (ms): the end of its wait, for the abandon figure."""
    return f"{PREFIX}:visitors:left_at"


def call_state(call_id: str) -> str:
    """HASH what the gateway knows of a call between webhooks: caller (as the carrier gave it),
    verified, callee, hint (IVR category), status, say_pos (last say event answered)."""
    return f"{PREFIX}:callstate:{call_id}"


def call_say(call_id: str) -> str:
    """STREAM of say events (agent/bot text to speak) for the telephony platform, capped."""
    return f"{PREFIX}:callstate:{call_id}:say"


def delivery(reply_id: str) -> str:
    """STRING final delivery outcome of an outbound reply (sent|delivered|failed), with a TTL,
    so a redelivered cs.outbound.v1 event is not sent to the customer twice."""
    return f"{PREFIX}:delivery:{reply_id}"


def delivery_ready(instance_id: str) -> str:
    """STRING set with a TTL while a delivery service instance consumes cs.outbound.v1."""
    return f"{PREFIX}:delivery:{instance_id}:ready"


def inbound_pending() -> str:
    """ZSET event id -> ms when the gateway accepted it; removed once the session stage has
    applied it (or dead-lettered it). What stays too long is re-published by the auditor."""
    return f"{PREFIX}:inbound:pending"


def inbound_copy(event_id: str) -> str:
    """HASH key, value (the envelope bytes as published) of an accepted inbound event, kept
    until it is settled so the auditor can publish it again."""
    return f"{PREFIX}:inbound:copy:{event_id}"


def audit_lock() -> str:
    """STRING held for one audit cycle, so only one worker re-publishes at a time."""
    return f"{PREFIX}:inbound:audit-lock"


def auth_token(digest: str) -> str:
    """HASH of an issued credential by the SHA-256 of the token: scope, subject, id, created_at.
    The token itself is never stored (channels/auth.py)."""
    return f"{PREFIX}:auth:token:{digest}"


def auth_subject(scope: str, subject: str) -> str:
    """HASH token_id -> digest of every live token of one agent (or supervisor, ops user), so
    all of them can be revoked at once."""
    return f"{PREFIX}:auth:subject:{scope}:{subject}"


def auth_ticket(digest: str) -> str:
    """STRING scope|subject|token_id of a one-time WebSocket ticket (expires in a minute)."""
    return f"{PREFIX}:auth:ticket:{digest}"


def desk_presence(agent_id: str) -> str:
    """ZSET connection id -> lease expiry (ms) of an agent's open desks (agent streams); a
    gateway renews the lease of each socket it holds (router/registry/agents.py)."""
    return f"{PREFIX}:agent:{agent_id}:desks"


# -- feedback: surveys and the tasks they open -------------------------------------------------


def survey(survey_id: str) -> str:
    """HASH id, conversation_id, customer_id, channel, party (who may answer: kind:value),
    agent_id, category, state (sent|answered), sent_at, expires_at, score, comment,
    answered_at, via. Kept 90 days (session/surveys.py)."""
    return f"{PREFIX}:survey:{survey_id}"


def survey_mail(message_id: str) -> str:
    """STRING survey id of the Message-ID the survey mail went out with (a reply with a digit
    answers it instead of reopening the conversation)."""
    return f"{PREFIX}:survey-mail:{message_id}"


def surveys_pending() -> str:
    """ZSET survey id -> ms it was answered, until the feedback stage has applied the answer;
    the workers publish again what stays too long (like the inbound ledger)."""
    return f"{PREFIX}:surveys:pending"


def task(task_id: str) -> str:
    """HASH of a callback or follow-up task (schemas.payloads.TaskView fields, JSON-free),
    plus offer_id, offer_expires_at, declined (JSON list of agent ids)."""
    return f"{PREFIX}:task:{task_id}"


def tasks_all() -> str:
    """ZSET task id -> created ms (listing, GET /v1/tasks)."""
    return f"{PREFIX}:tasks"


def tasks_due() -> str:
    """ZSET task id -> due ms of every task not done yet (overdue alerts)."""
    return f"{PREFIX}:tasks:due"


def tasks_unassigned() -> str:
    """ZSET task id -> due ms of tasks waiting for an agent (offered again by the timer)."""
    return f"{PREFIX}:tasks:unassigned"


def conversation_tasks(conversation_id: str) -> str:
    """SET of the task ids opened for a conversation (erasure removes them with it)."""
    return f"{PREFIX}:conv:{conversation_id}:tasks"


def agent_tasks(agent_id: str) -> str:
    """SET of task ids an agent accepted and has not finished."""
    return f"{PREFIX}:agent:{agent_id}:tasks"


# -- analytics: surge windows and baselines, live figures -------------------------------------


def surge_window(key: str) -> str:
    """ZSET customer id -> last message ms (event time) on a surge key ("transaction|161606"),
    pruned past the longest window: distinct customers in a sliding window."""
    return f"{PREFIX}:surge:win:{key}"


def surge_hour(epoch_hour: int, key: str) -> str:
    """HYPERLOGLOG of the customers on a key in one hour (9 days): the baselines' input."""
    return f"{PREFIX}:surge:hour:{epoch_hour}:{key}"


def surge_hour_keys(epoch_hour: int) -> str:
    """SET of the keys seen in one hour (9 days)."""
    return f"{PREFIX}:surge:hour:{epoch_hour}:keys"


def surge_keys() -> str:
    """SET of every surge key ever seen (a quiet hour counts 0 for each)."""
    return f"{PREFIX}:surge:keys"


def surge_baselines() -> str:
    """HASH ``<key>|how=<0..167>`` or ``<key>|hod=<0..23>`` -> "mean,observations" (EWMA of
    distinct customers per hour; streams/analytics/surge.py)."""
    return f"{PREFIX}:surge:baselines"


def surge_closed(epoch_hour: int) -> str:
    """STRING set (NX) by the worker that folded this hour into the baselines."""
    return f"{PREFIX}:surge:closed:{epoch_hour}"


def figures(scope: str) -> str:
    """HASH of live counters for a queue or channel over the last 15 minutes, by minute
    bucket: ``<minute>|answered``, ``<minute>|answered_in_sl``, ``<minute>|abandoned``,
    ``<minute>|handle_ms``, ``<minute>|handled``, ``<minute>|csat_good``, ``<minute>|csat_n``
    (streams/analytics/figures.py)."""
    return f"{PREFIX}:figures:{scope}"


def agents_present() -> str:
    """SET of agents with at least one desk open: with OMNIROUTER_REQUIRE_DESK only these are
    offered work (router/lua/offer.lua checks it in the claim)."""
    return f"{PREFIX}:agents:present"


def agents_desk_gone() -> str:
    """ZSET agent -> when its grace ends (ms): the last desk closed; if none opens again by
    then the agent goes away and its pending offers return to their queues."""
    return f"{PREFIX}:agents:desk_gone"


# -- knowledge base and fund data (session/knowledge.py, session/funds.py) ---------------------


def kb_articles() -> str:
    """HASH article id -> article JSON (title, body, category, intents, channels, owner,
    action, questions, version, updated_at)."""
    return f"{PREFIX}:kb:articles"


def kb_revision() -> str:
    """STRING counter bumped by every change of an article: readers rebuild their index."""
    return f"{PREFIX}:kb:rev"


def fund(code: str) -> str:
    """STRING fund record JSON (name, share_class, type, risk, nav {value, date, source},
    fees, redemption_arrival, sample, updated_at, written_at)."""
    return f"{PREFIX}:fund:{code}"


def fund_deleted(code: str) -> str:
    """STRING ms of the fund's latest deletion (expires): records written before it are old."""
    return f"{PREFIX}:fund:{code}:deleted"


def funds() -> str:
    """SET of fund codes with a record."""
    return f"{PREFIX}:funds"


def bot_replies(conversation_id: str) -> str:
    """HASH inbound event id -> the bot's reply JSON for it (re-published on redelivery)."""
    return f"{PREFIX}:conv:{conversation_id}:bot"


# -- orders and progress notices (session/orders.py) -----------------------------------------


def order(order_id: str) -> str:
    """STRING the order's latest status record JSON (schemas.payloads.OrderUpdated fields)."""
    return f"{PREFIX}:order:{order_id}"


def customer_orders(customer_id: str) -> str:
    """ZSET order id -> last update (ms): the customer's orders, newest last."""
    return f"{PREFIX}:cust:{customer_id}:orders"


def order_subscribers(order_id: str) -> str:
    """HASH conversation id -> the reply_to JSON of the channel the customer asked on: who
    hears each later status change of the order."""
    return f"{PREFIX}:order:{order_id}:subs"


def notices_held() -> str:
    """ZSET progress notice id -> when it may go out (ms): notices held by quiet hours (a
    taken one is leased: its score moves forward until it is confirmed sent)."""
    return f"{PREFIX}:notices:held"


def notice_held(reply_id: str) -> str:
    """STRING a held progress notice's reply JSON (streams/bot/stage.py's emit input)."""
    return f"{PREFIX}:notice:{reply_id}"


# -- limits (channels/limits.py) ----------------------------------------------------------------


def socket_leases(kind: str, owner_digest: str) -> str:
    """ZSET connection id -> ms its lease ends: one visitor's, agent's or watcher's open
    sockets on every gateway (by the owner's keyed digest; expires with its last lease)."""
    return f"{PREFIX}:sockets:{kind}:{owner_digest}"


def rate_bucket(rule: str, subject_digest: str) -> str:
    """HASH t (tokens left), ts (ms of the last refill) of one token bucket: a rate limit
    rule for one credential subject, client address or visitor (by its keyed digest, never
    the value), shared by every gateway; expires once it would be full again."""
    return f"{PREFIX}:rl:{rule}:{subject_digest}"
