-- An agent accepts its offer: the conversation becomes assigned to it (capacity stays held).
-- KEYS: the offer, offers:expiry, the agent's offers and conversations sets
-- ARGV: prefix, offer_id, agent_id, now_ms
-- The conversation is named by the offer, so its key is derived (same hash tag as KEYS).
-- Returns {'ok', conversation_id, channel, customer_id} or {reason}.
local ok, expiry_key, agent_offers_key, agent_convs_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local p, offer, agent, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local function conv_key(id) return p .. ':conv:' .. id end
local o = redis.call('HMGET', ok, 'conversation_id', 'agent_id', 'channel', 'expires_at', 'customer_id')
if not o[1] then return {'offer_not_found'} end
if o[2] ~= agent then return {'offer_not_yours'} end
if tonumber(o[4]) < now then return {'offer_expired'} end
local ck = conv_key(o[1])
redis.call('DEL', ok)
redis.call('ZREM', expiry_key, offer)
redis.call('SREM', agent_offers_key, offer)
-- How long the customer waited for this answer (live figures: service level).
local waited_since = tonumber(redis.call('HGET', ck, 'enqueued_at') or '')
if waited_since then redis.call('HSET', ck, 'answer_wait_ms', now - waited_since) end
redis.call('HSET', ck, 'state', 'assigned', 'agent_id', agent, 'last_agent', agent,
  'assigned_at', now, 'last_agent_at', now, 'assigned_channel', o[3])
-- The queue stays recorded: an assignment returned by an agent going offline goes back there.
redis.call('HDEL', ck, 'offer_id', 'offer_agent', 'enqueued_at', 'queue_since')
redis.call('SADD', agent_convs_key, o[1])
return {'ok', o[1], o[3], o[5] or ''}
