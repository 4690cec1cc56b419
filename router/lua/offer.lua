-- Reserve one unit of an agent's capacity on a channel and offer it a conversation.
-- The single place where a conversation can become "offered": it checks, in one atomic step,
-- that the conversation is still unplaced, that the agent is available, has room on that
-- channel and has not recently declined it. So no conversation is ever offered to two agents
-- and no agent ever holds more than its capacity, however many workers race.
-- ARGV: prefix, conversation_id, agent_id, channel, offer_id, expires_at_ms, now_ms, customer_id,
--       job_json (what routing knows of the conversation, kept for re-routing), queue,
--       head_start_ms (so a released offer goes back to its queue at the right place),
--       require_desk ('1': only an agent with an open desk, agents:present, may be offered)
-- KEYS: the conversation, its declined set, the agent, its capacity, its offers, the offer,
--       agents:load, agents:present, agents:last_offer, offers:expiry, the served zset of the
--       queue (ARGV queue)
-- Derived: the queue the conversation waits in, as its hash says (moves may have changed it).
-- Returns {'ok'} or {reason, detail}.
local ck, declined_key, ak, cap_key, agent_offers_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local offer_key, lk, present_key, last_offer_key = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local expiry_key, served = KEYS[10], KEYS[11]
local p, conv, agent, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local offer, expires, now, cust = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local job, queue, head, need_desk = ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local function queue_key(name) return p .. ':queue:' .. name end

local state = redis.call('HGET', ck, 'state')
if state ~= 'open' and state ~= 'waiting' then return {'conversation_not_routable', state or 'missing'} end
if redis.call('HGET', ak, 'status') ~= 'available' then return {'agent_unavailable', agent} end
if need_desk == '1' and redis.call('SISMEMBER', present_key, agent) == 0 then
  return {'agent_no_desk', agent}
end
local cap = tonumber(redis.call('HGET', cap_key, channel) or '0')
local load = tonumber(redis.call('HGET', lk, agent .. '|' .. channel) or '0')
if load >= cap then return {'agent_full', agent} end
-- An agent on a call takes no new chat when configured so (phone excludes chat).
if channel ~= 'phone' and redis.call('HGET', ak, 'phone_excludes_chat') == '1'
   and tonumber(redis.call('HGET', lk, agent .. '|phone') or '0') > 0 then
  return {'agent_on_call', agent}
end
local until_ms = redis.call('ZSCORE', declined_key, agent)
if until_ms and tonumber(until_ms) > now then return {'agent_declined', agent} end

redis.call('HINCRBY', lk, agent .. '|' .. channel, 1)
local q = redis.call('HGET', ck, 'queue')
if q then redis.call('ZREM', queue_key(q), conv) end
if not redis.call('HGET', ck, 'enqueued_at') then redis.call('HSET', ck, 'enqueued_at', now) end
if not redis.call('HGET', ck, 'queue_since') then redis.call('HSET', ck, 'queue_since', now) end
redis.call('HSET', ck, 'state', 'offered', 'offer_id', offer, 'offer_agent', agent, 'job', job,
  'queue', queue, 'head_start', head)
redis.call('HSET', offer_key, 'conversation_id', conv, 'agent_id', agent,
  'channel', channel, 'expires_at', expires, 'created_at', now, 'customer_id', cust)
redis.call('ZADD', expiry_key, expires, offer)
redis.call('SADD', agent_offers_key, offer)
redis.call('HSET', last_offer_key, agent, now)
-- Recent offers per queue: their rate gives the estimated wait of those still queued.
redis.call('ZADD', served, now, offer)
redis.call('ZREMRANGEBYSCORE', served, '-inf', now - 900000)
return {'ok', offer}
