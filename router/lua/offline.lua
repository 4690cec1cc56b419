-- An agent goes offline (or away with give_back): in one step its status changes, every
-- pending offer is taken back and every open assignment returns to its queue, so nothing it
-- held is stranded and no offer can be made to it afterwards (offer.lua checks the status).
-- ARGV: prefix, agent_id, status, now_ms, give_back ('1' returns offers and assignments,
--       'offers' only the pending offers: a desk that went away keeps its conversations)
-- Returns {previous_status, n_offers, offer_id, conversation_id, customer_id, ...,
--          conversation_id, customer_id, ...} or {'agent_not_found'}.
local p, agent, status, now, give = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local ak = p .. ':agent:' .. agent
local prev = redis.call('HGET', ak, 'status')
if not prev then return {'agent_not_found'} end
redis.call('HSET', ak, 'status', status)
if status == 'available' then
  redis.call('SADD', p .. ':agents:available', agent)
else
  redis.call('SREM', p .. ':agents:available', agent)
end
local out = {prev, 0}
if give ~= '1' and give ~= 'offers' then return out end
local function back_in_queue(conv, ck, since)
  local c = redis.call('HMGET', ck, 'queue', 'head_start')
  requeue(p, ck, conv, c[1] or 'unclear', since - tonumber(c[2] or '0'))
end
local n = 0
for _, offer in ipairs(redis.call('SMEMBERS', ak .. ':offers')) do
  local ok = p .. ':offer:' .. offer
  local o = redis.call('HMGET', ok, 'conversation_id', 'channel', 'customer_id')
  redis.call('DEL', ok)
  redis.call('ZREM', p .. ':offers:expiry', offer)
  if o[1] then
    give_back(p, agent, o[2])
    local ck = p .. ':conv:' .. o[1]
    local c = redis.call('HMGET', ck, 'offer_id', 'enqueued_at')
    if c[1] == offer then
      back_in_queue(o[1], ck, tonumber(c[2] or now))
      redis.call('HDEL', ck, 'offer_id', 'offer_agent')
    end
    table.insert(out, offer); table.insert(out, o[1]); table.insert(out, o[3] or '')
    n = n + 1
  end
end
redis.call('DEL', ak .. ':offers')
out[2] = n
if give == 'offers' then return out end
for _, conv in ipairs(redis.call('SMEMBERS', ak .. ':convs')) do
  local ck = p .. ':conv:' .. conv
  local c = redis.call('HMGET', ck, 'state', 'agent_id', 'assigned_channel', 'customer_id')
  if c[1] == 'assigned' and c[2] == agent then
    give_back(p, agent, c[3])
    redis.call('HSET', ck, 'enqueued_at', now, 'queue_since', now)
    back_in_queue(conv, ck, now)
    redis.call('HDEL', ck, 'agent_id')
    table.insert(out, conv); table.insert(out, c[4] or '')
  end
end
redis.call('DEL', ak .. ':convs')
return out
