-- A customer left while waiting for an agent (a chat visitor gone past its grace, or who said
-- it leaves): the conversation is closed as abandoned, taken out of its queue, its pending
-- offer withdrawn and that agent's slot given back, in one step, so an agent can never accept
-- an offer for a customer who is gone. Only from open, waiting or offered, and only on the
-- channel it left (a customer who moved to the phone meanwhile has not left).
-- KEYS: the conversation, offers:expiry, agents:load
-- ARGV: prefix, conversation_id, channel, now_ms
-- Derived (named by the conversation hash): its offer, that offer's agent, its queue.
-- Returns {'ok', offer_id, agent_id, offer_channel, customer_id, queue, category, wait_began}
--      or {reason, state}.
local ck, expiry_key, load_key = KEYS[1], KEYS[2], KEYS[3]
local p, conv, channel, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local function offer_key(id) return p .. ':offer:' .. id end
local function agent_offers_key(agent) return p .. ':agent:' .. agent .. ':offers' end
local function queue_key(q) return p .. ':queue:' .. q end
local c = redis.call('HMGET', ck, 'state', 'channel', 'queue', 'offer_id', 'customer_id',
  'category', 'enqueued_at', 'created_at')
if not c[1] then return {'conversation_not_found', ''} end
if c[1] ~= 'open' and c[1] ~= 'waiting' and c[1] ~= 'offered' then return {'not_waiting', c[1]} end
if c[2] ~= channel then return {'other_channel', c[2] or ''} end
local offer, agent, ochan = '', '', ''
if c[1] == 'offered' and c[4] then
  local ok = offer_key(c[4])
  local o = redis.call('HMGET', ok, 'agent_id', 'channel')
  if o[1] then
    redis.call('DEL', ok)
    redis.call('ZREM', expiry_key, c[4])
    redis.call('SREM', agent_offers_key(o[1]), c[4])
    give_back(load_key, o[1], o[2])
    offer, agent, ochan = c[4], o[1], o[2]
  end
end
if c[3] then redis.call('ZREM', queue_key(c[3]), conv) end
redis.call('HSET', ck, 'state', 'closed', 'closed_at', now, 'closed_reason', 'abandoned')
redis.call('HDEL', ck, 'offer_id', 'offer_agent')
return {'ok', offer, agent, ochan, c[5] or '', c[3] or '', c[6] or '', c[7] or c[8] or ''}
