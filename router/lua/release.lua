-- Take an offer back (rejected, expired, or its agent went offline) and free its capacity.
-- Only one caller can win for a given offer: the hash is deleted in the same step. The
-- conversation goes straight back to its queue at its old place, so it is never left
-- unplaced even if the caller dies before it routes again.
-- ARGV: prefix, offer_id, required_agent ('' for any), only_if_expired ('1'|'0'), now_ms,
--       decline_ms (how long this agent is not offered the conversation again; 0 for none)
-- KEYS: the offer, offers:expiry, agents:load, queues
-- Derived (named by the offer and its conversation): the conversation, its declined set, the
-- agent's offers set, the queue it goes back to.
-- Returns {'ok', conversation_id, agent_id, channel, customer_id} or {reason}.
local ok, expiry_key, load_key, queues_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local p, offer, need, only_expired = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, decline = tonumber(ARGV[5]), tonumber(ARGV[6])
local function conv_key(id) return p .. ':conv:' .. id end
local function agent_offers_key(agent) return p .. ':agent:' .. agent .. ':offers' end
local function queue_key(name) return p .. ':queue:' .. name end
local o = redis.call('HMGET', ok, 'conversation_id', 'agent_id', 'channel', 'expires_at', 'customer_id')
if not o[1] then
  redis.call('ZREM', expiry_key, offer)
  return {'offer_not_found'}
end
if need ~= '' and o[2] ~= need then return {'offer_not_yours'} end
if only_expired == '1' and tonumber(o[4]) > now then return {'offer_not_expired'} end
redis.call('DEL', ok)
redis.call('ZREM', expiry_key, offer)
redis.call('SREM', agent_offers_key(o[2]), offer)
give_back(load_key, o[2], o[3])
local ck = conv_key(o[1])
local c = redis.call('HMGET', ck, 'offer_id', 'queue', 'enqueued_at', 'head_start')
if c[1] == offer then
  local q = c[2] or 'unclear'
  requeue(queue_key(q), queues_key, ck, o[1], q, tonumber(c[3] or now) - tonumber(c[4] or '0'))
  redis.call('HDEL', ck, 'offer_id', 'offer_agent')
end
if decline > 0 then
  redis.call('ZADD', ck .. ':declined', now + decline, o[2])
  redis.call('EXPIRE', ck .. ':declined', math.ceil(decline / 1000) + 60)
  -- Routing reads the declined set only for conversations that may have one in force.
  if tonumber(redis.call('HGET', ck, 'declined_until') or '0') < now + decline then
    redis.call('HSET', ck, 'declined_until', now + decline)
  end
end
return {'ok', o[1], o[2], o[3], o[5] or ''}
