-- Right to erasure: remove a customer's directory record, identity links, conversations,
-- timelines, seen-sets, thread/call maps, call state, dedupe keys, the chat visitor frame
-- streams (replies and surveys the widget replays) and socket presence, the inbound ledger's copies of applied
-- messages, surveys and tasks, bot replies, orders and their subscriptions, and every
-- anonymous id folded into it, in one step; a conversation still held by routing is taken
-- out of its queue, offer or agent first so capacity is not leaked. Agent frame streams and
-- ledger copies not yet applied to a conversation are redacted by the caller.
-- KEYS: the customer's aliases set, idents set and directory record; the shared keys
--       visitors:gone, visitors:left_at, inbound:pending, surveys:pending, tasks, tasks:due,
--       tasks:unassigned, notices:held, agents:load, offers:expiry
-- ARGV: prefix, customer_id
-- Everything else is found inside (the customer's and its aliases' conversations, their
-- offers, agents, queues, tasks, orders, visitors) and named with `derived`.
-- Returns {conversations removed, keys removed, {conversation ids}, {customer ids},
--          {visitor ids seen}}
local aliases_key, idents_key, record_key = KEYS[1], KEYS[2], KEYS[3]
local gone_key, left_at_key, pending_key, surveys_pending_key = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local tasks_key, tasks_due_key, tasks_unassigned_key = KEYS[8], KEYS[9], KEYS[10]
local held_key, load_key, expiry_key = KEYS[11], KEYS[12], KEYS[13]
local p, cid = ARGV[1], ARGV[2]
local function derived(...) return p .. ':' .. table.concat({...}, ':') end
local ids = {cid}
for _, a in ipairs(redis.call('SMEMBERS', aliases_key)) do ids[#ids + 1] = a end
local convs, seen = {}, {}
for _, id in ipairs(ids) do
  local found = redis.call('ZRANGE', derived('cust', id, 'convs'), 0, -1)
  local cur = redis.call('GET', derived('cust', id, 'open'))
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
  del(derived('visitor', v, 'frames'), derived('visitor', v, 'sockets'))
  -- A visitor who just left is waiting for its abandon grace: it leaves nothing behind.
  redis.call('ZREM', gone_key, v)
  redis.call('HDEL', left_at_key, v)
end
for _, c in ipairs(convs) do
  local ck = derived('conv', c)
  local h = redis.call('HMGET', ck, 'state', 'queue', 'offer_id', 'agent_id', 'assigned_channel')
  if h[2] then redis.call('ZREM', derived('queue', h[2]), c) end
  if h[1] == 'offered' and h[3] then
    local offer_key = derived('offer', h[3])
    local o = redis.call('HMGET', offer_key, 'agent_id', 'channel')
    if o[1] then
      give_back(load_key, o[1], o[2])
      redis.call('SREM', derived('agent', o[1], 'offers'), h[3])
    end
    redis.call('ZREM', expiry_key, h[3])
    del(offer_key)
  elseif h[1] == 'assigned' and h[4] then
    redis.call('SREM', derived('agent', h[4], 'convs'), c)
    give_back(load_key, h[4], h[5])
  end
  for _, ref_key in ipairs(redis.call('SMEMBERS', ck .. ':refs')) do del(ref_key) end
  -- Data written before the refs listed them: the visitor of the last reply address, the
  -- ledger's copies of the messages applied here.
  local rt = redis.call('HGET', ck, 'reply_to')
  if rt then
    local ok, t = pcall(cjson.decode, rt)
    local v = ok and type(t) == 'table' and type(t.from) == 'table' and t.from.visitor_id
    if type(v) == 'string' then visitor(v) end
  end
  for _, e in ipairs(redis.call('SMEMBERS', ck .. ':seen')) do
    del(derived('inbound', 'copy', e))
    redis.call('ZREM', pending_key, e)
  end
  -- Feedback: the survey (its answer and comment) and the tasks it opened.
  del(derived('survey', 'sv-' .. c))
  redis.call('ZREM', surveys_pending_key, 'sv-' .. c)
  for _, t in ipairs(redis.call('SMEMBERS', ck .. ':tasks')) do
    local holder = redis.call('HGET', derived('task', t), 'agent_id')
    if holder and holder ~= '' then redis.call('SREM', derived('agent', holder, 'tasks'), t) end
    redis.call('ZREM', tasks_key, t)
    redis.call('ZREM', tasks_due_key, t)
    redis.call('ZREM', tasks_unassigned_key, t)
    del(derived('task', t))
  end
  del(ck, ck .. ':timeline', ck .. ':seen', ck .. ':declined', ck .. ':refs', ck .. ':tasks',
    ck .. ':bot')
end
local vprefix = p .. ':ident:visitor_id:'
for _, link_key in ipairs(redis.call('SMEMBERS', idents_key)) do
  if redis.call('HGET', link_key, 'customer_id') == cid then del(link_key) end
  if string.sub(link_key, 1, #vprefix) == vprefix then visitor(string.sub(link_key, #vprefix + 1)) end
end
-- Orders: the transfer agent's records of this customer and who was told of them, and the
-- progress notices of them that quiet hours still hold (ids start with the order id).
local held = redis.call('ZRANGE', held_key, 0, -1)
for _, id in ipairs(ids) do
  local orders_key = derived('cust', id, 'orders')
  for _, o in ipairs(redis.call('ZRANGE', orders_key, 0, -1)) do
    del(derived('order', o), derived('order', o, 'subs'))
    for _, n in ipairs(held) do
      if string.sub(n, 1, #o + 1) == o .. '.' then
        redis.call('ZREM', held_key, n)
        del(derived('notice', n))
      end
    end
  end
  del(orders_key)
end
del(record_key)
for _, id in ipairs(ids) do
  del(derived('cust', id, 'open'), derived('cust', id, 'convs'), derived('cust', id, 'idents'),
    derived('cust', id, 'aliases'), derived('cust', id, 'merged'))
end
return {#convs, removed, convs, ids, visitors}
