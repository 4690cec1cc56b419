-- An agent goes offline (or away with give_back): in one step its status changes, every
-- pending offer is taken back and every open assignment returns to its queue, so nothing it
-- held is stranded and no offer can be made to it afterwards (offer.lua checks the status).
-- ARGV: prefix, agent_id, status, now_ms, give_back ('1' returns offers and assignments,
--       'offers' only the pending offers: a desk that went away keeps its conversations)
-- KEYS: the agent, its offers and conversations sets, agents:available, offers:expiry,
--       agents:load, queues
-- Derived (named by the agent's sets and the conversations): each offer, its conversation,
-- the queue each goes back to.
-- Returns {previous_status, n_offers, offer_id, conversation_id, customer_id, ...,
--          conversation_id, customer_id, ...} or {'agent_not_found'}.
local ak, agent_offers_key, agent_convs_key, available_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local expiry_key, load_key, queues_key = KEYS[5], KEYS[6], KEYS[7]
local p, agent, status, now, give = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local function offer_key(id) return p .. ':offer:' .. id end
local function conv_key(id) return p .. ':conv:' .. id end
local function queue_key(name) return p .. ':queue:' .. name end
local prev = redis.call('HGET', ak, 'status')
if not prev then return {'agent_not_found'} end
redis.call('HSET', ak, 'status', status)
if status == 'available' then
  redis.call('SADD', available_key, agent)
else
  redis.call('SREM', available_key, agent)
end
local out = {prev, 0}
if give ~= '1' and give ~= 'offers' then return out end
local function back_in_queue(conv, ck, since)
  local c = redis.call('HMGET', ck, 'queue', 'head_start')
  local q = c[1] or 'unclear'
  requeue(queue_key(q), queues_key, ck, conv, q, since - tonumber(c[2] or '0'))
end
local n = 0
for _, offer in ipairs(redis.call('SMEMBERS', agent_offers_key)) do
  local ok = offer_key(offer)
  local o = redis.call('HMGET', ok, 'conversation_id', 'channel', 'customer_id')
  redis.call('DEL', ok)
  redis.call('ZREM', expiry_key, offer)
  if o[1] then
    give_back(load_key, agent, o[2])
    local ck = conv_key(o[1])
    local c = redis.call('HMGET', ck, 'offer_id', 'enqueued_at')
    if c[1] == offer then
      back_in_queue(o[1], ck, tonumber(c[2] or now))
      redis.call('HDEL', ck, 'offer_id', 'offer_agent')
    end
    table.insert(out, offer); table.insert(out, o[1]); table.insert(out, o[3] or '')
    n = n + 1
  end
end
redis.call('DEL', agent_offers_key)
out[2] = n
if give == 'offers' then return out end
for _, conv in ipairs(redis.call('SMEMBERS', agent_convs_key)) do
  local ck = conv_key(conv)
  local c = redis.call('HMGET', ck, 'state', 'agent_id', 'assigned_channel', 'customer_id')
  if c[1] == 'assigned' and c[2] == agent then
    give_back(load_key, agent, c[3])
    redis.call('HSET', ck, 'enqueued_at', now, 'queue_since', now)
    back_in_queue(conv, ck, now)
    redis.call('HDEL', ck, 'agent_id')
    table.insert(out, conv); table.insert(out, c[4] or '')
  end
end
redis.call('DEL', agent_convs_key)
return out
