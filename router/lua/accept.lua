-- An agent accepts its offer: the conversation becomes assigned to it (capacity stays held).
-- ARGV: prefix, offer_id, agent_id, now_ms
-- Returns {'ok', conversation_id, channel, customer_id} or {reason}.
local p, offer, agent, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local ok = p .. ':offer:' .. offer
local o = redis.call('HMGET', ok, 'conversation_id', 'agent_id', 'channel', 'expires_at', 'customer_id')
if not o[1] then return {'offer_not_found'} end
if o[2] ~= agent then return {'offer_not_yours'} end
if tonumber(o[4]) < now then return {'offer_expired'} end
local ck = p .. ':conv:' .. o[1]
redis.call('DEL', ok)
redis.call('ZREM', p .. ':offers:expiry', offer)
redis.call('SREM', p .. ':agent:' .. agent .. ':offers', offer)
-- How long the customer waited for this answer (live figures: service level).
local waited_since = tonumber(redis.call('HGET', ck, 'enqueued_at') or '')
if waited_since then redis.call('HSET', ck, 'answer_wait_ms', now - waited_since) end
redis.call('HSET', ck, 'state', 'assigned', 'agent_id', agent, 'last_agent', agent,
  'assigned_at', now, 'last_agent_at', now, 'assigned_channel', o[3])
-- The queue stays recorded: an assignment returned by an agent going offline goes back there.
redis.call('HDEL', ck, 'offer_id', 'offer_agent', 'enqueued_at', 'queue_since')
redis.call('SADD', p .. ':agent:' .. agent .. ':convs', o[1])
return {'ok', o[1], o[3], o[5] or ''}
