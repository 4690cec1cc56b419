-- Right to erasure: remove a customer's directory record, identity links, conversations,
-- timelines, seen-sets, thread/call maps and dedupe keys, and every anonymous id folded into
-- it, and the web visitor frame streams of its chats, in one step; a conversation still held by routing is taken out of its queue, offer or
-- agent first so capacity is not leaked. Agent frame streams are redacted by the caller.
-- ARGV: prefix, customer_id
-- Returns {conversations removed, keys removed, {conversation ids}, {customer ids}}
local p, cid = ARGV[1], ARGV[2]
local ids = {cid}
for _, a in ipairs(redis.call('SMEMBERS', p .. ':cust:' .. cid .. ':aliases')) do ids[#ids + 1] = a end
local convs, seen = {}, {}
for _, id in ipairs(ids) do
  local ck = p .. ':cust:' .. id
  local found = redis.call('ZRANGE', ck .. ':convs', 0, -1)
  local cur = redis.call('GET', ck .. ':open')
  if cur then found[#found + 1] = cur end
  for _, c in ipairs(found) do
    if not seen[c] then seen[c] = true; convs[#convs + 1] = c end
  end
end
local removed = 0
local function del(...)
  removed = removed + redis.call('DEL', ...)
end
for _, c in ipairs(convs) do
  local ck = p .. ':conv:' .. c
  local h = redis.call('HMGET', ck, 'state', 'queue', 'offer_id', 'agent_id', 'assigned_channel')
  if h[2] then redis.call('ZREM', p .. ':queue:' .. h[2], c) end
  if h[1] == 'offered' and h[3] then
    local ok = p .. ':offer:' .. h[3]
    local o = redis.call('HMGET', ok, 'agent_id', 'channel')
    if o[1] then
      give_back(p, o[1], o[2])
      redis.call('SREM', p .. ':agent:' .. o[1] .. ':offers', h[3])
    end
    redis.call('ZREM', p .. ':offers:expiry', h[3])
    del(ok)
  elseif h[1] == 'assigned' and h[4] then
    redis.call('SREM', p .. ':agent:' .. h[4] .. ':convs', c)
    give_back(p, h[4], h[5])
  end
  for _, k in ipairs(redis.call('SMEMBERS', ck .. ':refs')) do del(k) end
  -- The web visitor's frame stream (replies, queue places, the agent who joined).
  local rt = redis.call('HGET', ck, 'reply_to')
  if rt then
    local ok, r = pcall(cjson.decode, rt)
    if ok and type(r) == 'table' and type(r['from']) == 'table' and r['from']['visitor_id'] then
      del(p .. ':visitor:' .. r['from']['visitor_id'] .. ':frames')
    end
  end
  -- Feedback: the survey (its answer and comment) and the tasks it opened.
  del(p .. ':survey:sv-' .. c)
  redis.call('ZREM', p .. ':surveys:pending', 'sv-' .. c)
  for _, t in ipairs(redis.call('SMEMBERS', ck .. ':tasks')) do
    local holder = redis.call('HGET', p .. ':task:' .. t, 'agent_id')
    if holder and holder ~= '' then redis.call('SREM', p .. ':agent:' .. holder .. ':tasks', t) end
    redis.call('ZREM', p .. ':tasks', t)
    redis.call('ZREM', p .. ':tasks:due', t)
    redis.call('ZREM', p .. ':tasks:unassigned', t)
    del(p .. ':task:' .. t)
  end
  del(ck, ck .. ':timeline', ck .. ':seen', ck .. ':declined', ck .. ':refs', ck .. ':tasks',
    ck .. ':bot')
end
for _, k in ipairs(redis.call('SMEMBERS', p .. ':cust:' .. cid .. ':idents')) do
  if redis.call('HGET', k, 'customer_id') == cid then
    del(k)
    local visitor = string.match(k, ':ident:visitor_id:(.+)$')
    if visitor then del(p .. ':visitor:' .. visitor .. ':frames') end
  end
end
del(p .. ':customer:' .. cid)
for _, id in ipairs(ids) do
  local ck = p .. ':cust:' .. id
  del(ck .. ':open', ck .. ':convs', ck .. ':idents', ck .. ':aliases', ck .. ':merged')
end
return {#convs, removed, convs, ids}
