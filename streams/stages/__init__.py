"""The worker's stages, one module each, independent of faust (streams/app.py wires them).

    identify_classify  cs.inbound.v1      -> cs.messages.v1 (re-keyed by customer)
    session_route      cs.messages.v1     -> conversation in Redis, offer or queue
    agent_events       cs.agent-events.v1 -> timeline, assignment frames, replies to deliver
    directory          cs.customers.v1    -> the customer directory in Redis
    funds              cs.funds.v1        -> fund records (dated NAVs) in Redis
    orders             cs.orders.v1       -> order status in Redis, progress notices, tasks
    placements         what routing decided, as agent frames and events (shared by the above
                       and by the routing timers)

Each stage takes a batch and an Outbox (streams/consume.py): its Redis work is done for the
whole batch at once, what it publishes is sent after. Every handler is idempotent: a
redelivered event finds its effects already in Redis and only re-publishes what it would have
published, with the same ids, and consumers of those topics dedupe by id.
"""
