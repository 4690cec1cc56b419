-- Right to erasure: remove a customer's directory record, identity links, conversations,
-- timelines, seen-sets, thread/call maps, call state, dedupe keys, the chat visitor frame
-- streams (replies and surveys the widget replays) and socket presence, the inbound ledger's copies of applied
-- messages, surveys and tasks, bot replies, orders and their subscriptions, and every
-- anonymous id folded into it, in one step; a conversation still held by routing is taken
-- out of its queue, offer or agent first so capacity is not leaked. Agent frame streams and
-- ledger copies not yet applied to a conversation are redacted by the caller.
-- ARGV: prefix, customer_id
-- Returns {conversations removed, keys removed, {conversation ids}, {customer ids},
--          {visitor ids seen}}
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
local visitors, vseen = {}, {}
local function visitor(v)
  if vseen[v] then return end
  vseen[v] = true
  visitors[#visitors + 1] = v
  del(p .. ':visitor:' .. v .. ':frames', p .. ':visitor:' .. v .. ':sockets')
  -- A visitor who just left is waiting for its abandon grace: it leaves nothing behind.
  redis.call('ZREM', p .. ':visitors:gone', v)
  redis.call('HDEL', p .. ':visitors:left_at', v)
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
  -- Data written before the refs listed them: the visitor of the last reply address, the
  -- ledger's copies of the messages applied here.
  local rt = redis.call('HGET', ck, 'reply_to')
  if rt then
    local ok, t = pcall(cjson.decode, rt)
    local v = ok and type(t) == 'table' and type(t.from) == 'table' and t.from.visitor_id
    if type(v) == 'string' then visitor(v) end
  end
  for _, e in ipairs(redis.call('SMEMBERS', ck .. ':seen')) do
    del(p .. ':inbound:copy:' .. e)
    redis.call('ZREM', p .. ':inbound:pending', e)
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
local vprefix = p .. ':ident:visitor_id:'
for _, k in ipairs(redis.call('SMEMBERS', p .. ':cust:' .. cid .. ':idents')) do
  if redis.call('HGET', k, 'customer_id') == cid then del(k) end
  if string.sub(k, 1, #vprefix) == vprefix then visitor(string.sub(k, #vprefix + 1)) end
end
-- Orders: the transfer agent's records of this customer and who was told of them, and the
-- progress notices of them that quiet hours still hold (ids start with the order id).
local held = redis.call('ZRANGE', p .. ':notices:held', 0, -1)
for _, id in ipairs(ids) do
  local ok = p .. ':cust:' .. id .. ':orders'
  for _, o in ipairs(redis.call('ZRANGE', ok, 0, -1)) do
    del(p .. ':order:' .. o, p .. ':order:' .. o .. ':subs')
    for _, n in ipairs(held) do
      if string.sub(n, 1, #o + 1) == o .. '.' then
        redis.call('ZREM', p .. ':notices:held', n)
        del(p .. ':notice:' .. n)
      end
    end
  end
  del(ok)
end
del(p .. ':customer:' .. cid)
for _, id in ipairs(ids) do
  local ck = p .. ':cust:' .. id
  del(ck .. ':open', ck .. ':convs', ck .. ':idents', ck .. ':aliases', ck .. ':merged')
end
return {#convs, removed, convs, ids, visitors}
