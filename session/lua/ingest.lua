-- Apply one customer message to the customer's conversation, atomically.
-- Finds the customer's current conversation (reopening a resolved one within the window) or
-- creates one, skips an event it has already applied, records channel switches, appends the
-- entry to the timeline and refreshes TTLs. Two messages of one customer arriving at once
-- from two channels can never create two open conversations: this runs as one step.
-- ARGV: prefix, customer_id, event_id, new_conversation_id, now_ms, entry_json, channel,
--       reopen_window_ms, history_cap, ttl_s, category, priority, reply_to_json
-- Returns: {conversation_id, outcome, state, agent_id, offer_id, last_agent}
--          outcome is created | joined | reopened | duplicate
local p, cid, eid, newid = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, entry, channel = tonumber(ARGV[5]), ARGV[6], ARGV[7]
local window, cap, ttl = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local category, priority, reply_to = ARGV[11], ARGV[12], ARGV[13]

local curkey = p .. ':cust:' .. cid .. ':open'
local conv = redis.call('GET', curkey)
local outcome = 'joined'

if conv then
  local ck = p .. ':conv:' .. conv
  if redis.call('SISMEMBER', ck .. ':seen', eid) == 1 then
    local s = redis.call('HMGET', ck, 'state', 'agent_id', 'offer_id', 'last_agent')
    return {conv, 'duplicate', s[1] or '', s[2] or '', s[3] or '', s[4] or ''}
  end
  local st = redis.call('HMGET', ck, 'state', 'resolved_at')
  if not st[1] then
    conv = false
  elseif st[1] == 'resolved' then
    if now - tonumber(st[2] or '0') <= window then
      redis.call('HSET', ck, 'state', 'open', 'reopened_at', now)
      redis.call('HDEL', ck, 'agent_id', 'queue', 'enqueued_at')
      outcome = 'reopened'
    else
      redis.call('HSET', ck, 'state', 'closed', 'closed_at', now)
      conv = false
    end
  elseif st[1] == 'closed' then
    conv = false
  end
end

local ck
if not conv then
  conv = newid
  ck = p .. ':conv:' .. conv
  redis.call('HSET', ck, 'id', conv, 'customer_id', cid, 'state', 'open', 'channel', channel,
    'created_at', now, 'category', category, 'priority', priority)
  redis.call('SET', curkey, conv)
  redis.call('ZADD', p .. ':cust:' .. cid .. ':convs', now, conv)
  outcome = 'created'
else
  ck = p .. ':conv:' .. conv
  local last = redis.call('HGET', ck, 'channel')
  if last and last ~= channel then
    redis.call('RPUSH', ck .. ':timeline', cjson.encode({kind = 'channel_switch',
      from = last, to = channel, at = now}))
    redis.call('HSET', ck, 'channel', channel)
  end
  -- A conversation that was unclear learns its category from a later, clearer message.
  if category ~= 'unclear' and redis.call('HGET', ck, 'category') == 'unclear' then
    redis.call('HSET', ck, 'category', category)
  end
  if tonumber(priority) > tonumber(redis.call('HGET', ck, 'priority') or '0') then
    redis.call('HSET', ck, 'priority', priority)
  end
end

redis.call('SADD', ck .. ':seen', eid)
redis.call('RPUSH', ck .. ':timeline', entry)
redis.call('LTRIM', ck .. ':timeline', -cap, -1)
redis.call('HSET', ck, 'updated_at', now, 'reply_to', reply_to)
for _, k in ipairs({ck, ck .. ':seen', ck .. ':timeline', curkey,
                    p .. ':cust:' .. cid .. ':convs'}) do
  redis.call('EXPIRE', k, ttl)
end
local s = redis.call('HMGET', ck, 'state', 'agent_id', 'offer_id', 'last_agent')
return {conv, outcome, s[1] or '', s[2] or '', s[3] or '', s[4] or ''}
