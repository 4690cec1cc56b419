-- Apply one customer message to the customer's conversation, atomically.
-- In one step: folds the conversations of anonymous ids this message proves to be the
-- customer's into the customer's; finds the conversation the message belongs to (the phone
-- call or email thread it continues, else the customer's current one, reopening a resolved
-- one within the window, else a new one); skips an event it has already applied; records
-- channel switches; appends the entry; remembers the message's thread and call ids; refreshes
-- TTLs. Two messages of one customer arriving at once from two channels can never create two
-- open conversations, whichever workers run them: this is one script.
-- KEYS: for the customer id given: cust:{id}:merged, :open, :convs, :aliases; call:{call_id}
--       and thread:{message_id} (named even when there is none: then never touched); the
--       new conversation's hash, seen-set, timeline and refs; thread:{ref} for each ref of
--       refs_json in order; then :open, :convs and :merged of each anonymous id of merge_json.
--       Derived inside (the prefix, ARGV[1]): conversations found by a call, a thread or
--       the customer's current pointer, and the customer's keys when the id is redirected.
-- ARGV: prefix, customer_id, event_id, new_conversation_id, now_ms, entry_json, channel,
--       reopen_window_ms, history_cap, ttl_s, category, priority, reply_to_json,
--       message_id ('' if none), call_id ('' if none), refs_json (thread message ids, most
--       recent first), merge_json (anonymous ids to fold in), ref_keys_json (keys to list
--       for erasure, e.g. the dedupe key), merge_link_ttl_s, anonymous ('1'|'0')
-- Returns: {conversation_id, outcome, state, agent_id, offer_id, last_agent, customer_id,
--           {system entries added, JSON}}; outcome is created | joined | reopened | duplicate
local p, cid, eid, newid = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, entry, channel = tonumber(ARGV[5]), ARGV[6], ARGV[7]
local window, cap, ttl = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local category, priority, reply_to = ARGV[11], ARGV[12], ARGV[13]
local mid, callid = ARGV[14], ARGV[15]
local refs, merges, refkeys = cjson.decode(ARGV[16]), cjson.decode(ARGV[17]), cjson.decode(ARGV[18])
local mttl, anonymous = tonumber(ARGV[19]), ARGV[20] == '1'

local merged_key, call_key, thread_key = KEYS[1], KEYS[5], KEYS[6]
local first_ref, first_merge = 11, 11 + #refs
local notes = {}
-- Keys of what the script finds inside: a conversation (by call, thread, current pointer or
-- fold), a customer the id is redirected to, a queue read from a conversation.
local function ckey(c) return p .. ':conv:' .. c end
local function cust_key(id, what) return p .. ':cust:' .. id .. ':' .. what end
local function queue_key(q) return p .. ':queue:' .. q end

local function note(conv, t)
  t.at = now
  local js = cjson.encode(t)
  redis.call('RPUSH', ckey(conv) .. ':timeline', js)
  notes[#notes + 1] = js
end

local function reopenable(st, resolved_at)
  if not st or st == 'closed' or st == 'merged' then return false end
  if st == 'resolved' then return now - tonumber(resolved_at or '0') <= window end
  return true
end

-- An anonymous id that was folded into a customer earlier: its late events follow it.
if anonymous then
  local to = redis.call('GET', merged_key)
  if to then cid = to; anonymous = false end
end
-- A call segment sent before the caller was verified, processed after a verified segment
-- of the same call: the platform's call id says it is that customer's call.
if anonymous and callid ~= '' then
  local m = redis.call('GET', call_key)
  local owner = m and redis.call('HGET', ckey(m), 'customer_id')
  if owner and owner ~= cid then cid = owner; anonymous = string.sub(owner, 1, 5) == 'anon-' end
end
local curkey, convskey, aliases_key = KEYS[2], KEYS[3], KEYS[4]
if cid ~= ARGV[2] then
  curkey, convskey, aliases_key = cust_key(cid, 'open'), cust_key(cid, 'convs'), cust_key(cid, 'aliases')
end

-- Entries of `from` joined into `into`'s timeline in time order (entries kept verbatim).
local function join_timelines(into, from)
  local all = {}
  for _, c in ipairs({into, from}) do
    for _, js in ipairs(redis.call('LRANGE', ckey(c) .. ':timeline', 0, -1)) do
      local ok, t = pcall(cjson.decode, js)
      all[#all + 1] = {tonumber(ok and t.at or 0) or 0, #all, js}
    end
  end
  table.sort(all, function(a, b) if a[1] == b[1] then return a[2] < b[2] end return a[1] < b[1] end)
  local tk = ckey(into) .. ':timeline'
  redis.call('DEL', tk, ckey(from) .. ':timeline')
  for _, e in ipairs(all) do redis.call('RPUSH', tk, e[3]) end
  redis.call('LTRIM', tk, -cap, -1)
end

-- Fold conversation `victim` into `survivor`: one history, one place in routing.
local function fold(survivor, victim)
  local vk = ckey(victim)
  join_timelines(survivor, victim)
  redis.call('SUNIONSTORE', ckey(survivor) .. ':seen', ckey(survivor) .. ':seen', vk .. ':seen')
  for _, ref_key in ipairs(redis.call('SMEMBERS', vk .. ':refs')) do
    if string.find(ref_key, p .. ':thread:', 1, true) == 1 or string.find(ref_key, p .. ':call:', 1, true) == 1 then
      redis.call('SET', ref_key, survivor, 'EX', ttl)
    end
    redis.call('SADD', ckey(survivor) .. ':refs', ref_key)
  end
  local v = redis.call('HMGET', vk, 'state', 'queue')
  if v[1] == 'waiting' and v[2] then redis.call('ZREM', queue_key(v[2]), victim) end
  redis.call('DEL', vk .. ':seen', vk .. ':refs')
  redis.call('HSET', vk, 'state', 'merged', 'merged_into', survivor, 'merged_at', now)
  redis.call('HDEL', vk, 'job', 'queue', 'reply_to')
  note(survivor, {kind = 'merged', from_conversation = victim})
end

local function busy(st) return st == 'offered' or st == 'assigned' end

-- Move an anonymous id's conversations to the customer, folding its current one.
local function absorb(anon, anon_open, anon_convs, anon_merged)
  if anon == cid then return end
  local a = redis.call('GET', anon_open)
  local listed = redis.call('ZRANGE', anon_convs, 0, -1, 'WITHSCORES')
  for i = 1, #listed, 2 do
    redis.call('ZADD', convskey, listed[i + 1], listed[i])
    redis.call('HSET', ckey(listed[i]), 'customer_id', cid)
  end
  redis.call('DEL', anon_open, anon_convs)
  redis.call('SET', anon_merged, cid, 'EX', mttl)
  redis.call('SADD', aliases_key, anon)
  if not a then return end
  local ast = redis.call('HMGET', ckey(a), 'state', 'resolved_at')
  if not reopenable(ast[1], ast[2]) then return end
  local b = redis.call('GET', curkey)
  local bst = b and redis.call('HMGET', ckey(b), 'state', 'resolved_at') or {}
  if not b or not reopenable(bst[1], bst[2]) then
    redis.call('SET', curkey, a)
    note(a, {kind = 'identified', from_customer = anon})
  elseif busy(ast[1]) and busy(bst[1]) then
    -- Both already with agents: neither is taken from its agent; both are listed.
    note(a, {kind = 'identified', from_customer = anon, also_open = b})
  elseif busy(ast[1]) then
    fold(a, b)
    redis.call('SET', curkey, a)
  else
    fold(b, a)
  end
end

for i, anon in ipairs(merges) do
  local at = first_merge + 3 * (i - 1)
  absorb(anon, KEYS[at], KEYS[at + 1], KEYS[at + 2])
end

-- Which conversation does the message continue? A call or thread of the customer's own is
-- taken only when it does not open a second conversation beside the current one.
local conv, other_sender = false, false
local function current_open()
  local c = redis.call('GET', curkey)
  if not c then return false end
  local st = redis.call('HMGET', ckey(c), 'state', 'resolved_at')
  return reopenable(st[1], st[2]) and c
end
local function own_ok(m)
  local c = current_open()
  return not c or c == m
end
if callid ~= '' then
  local m = redis.call('GET', call_key)
  if m then
    local owner = redis.call('HGET', ckey(m), 'customer_id')
    -- The call id comes from the telephony platform: segments before and after the caller
    -- was verified are the same caller.
    if owner and owner ~= cid and string.sub(owner, 1, 5) == 'anon-' then
      absorb(owner, cust_key(owner, 'open'), cust_key(owner, 'convs'), cust_key(owner, 'merged'))
      m = redis.call('GET', call_key)
      owner = redis.call('HGET', ckey(m), 'customer_id')
    end
    local st = redis.call('HMGET', ckey(m), 'state', 'resolved_at')
    if owner == cid and reopenable(st[1], st[2]) and own_ok(m) then conv = m end
  end
end
if not conv then
  for i = 1, #refs do
    local m = redis.call('GET', KEYS[first_ref + i - 1])
    if m then
      local st = redis.call('HMGET', ckey(m), 'state', 'resolved_at', 'customer_id')
      if reopenable(st[1], st[2]) and (st[3] ~= cid or own_ok(m)) then
        conv = m
        other_sender = st[3] ~= cid
      end
      break
    end
  end
end
local current = redis.call('GET', curkey)
if not conv then conv = current end

local outcome = 'joined'
if conv then
  local found_key = ckey(conv)
  if redis.call('SISMEMBER', found_key .. ':seen', eid) == 1 then
    local s = redis.call('HMGET', found_key, 'state', 'agent_id', 'offer_id', 'last_agent', 'customer_id')
    return {conv, 'duplicate', s[1] or '', s[2] or '', s[3] or '', s[4] or '', s[5] or cid, {}}
  end
  local st = redis.call('HMGET', found_key, 'state', 'resolved_at')
  if not st[1] or st[1] == 'closed' or st[1] == 'merged' then
    conv = false
  elseif st[1] == 'resolved' then
    if now - tonumber(st[2] or '0') <= window then
      redis.call('HSET', found_key, 'state', 'open', 'reopened_at', now)
      redis.call('HDEL', found_key, 'agent_id', 'queue', 'enqueued_at')
      outcome = 'reopened'
      if not other_sender then redis.call('SET', curkey, conv) end
    else
      redis.call('HSET', found_key, 'state', 'closed', 'closed_at', now)
      conv = false
    end
  end
end

-- The new conversation's keys are declared; one found inside is derived.
local ck, seen_key, timeline_key, refs_key
if not conv then
  conv = newid
  ck, seen_key, timeline_key, refs_key = KEYS[7], KEYS[8], KEYS[9], KEYS[10]
  redis.call('HSET', ck, 'id', conv, 'customer_id', cid, 'state', 'open', 'channel', channel,
    'created_at', now, 'category', category, 'priority', priority)
  redis.call('SET', curkey, conv)
  redis.call('ZADD', convskey, now, conv)
  outcome = 'created'
else
  ck = ckey(conv)
  seen_key, timeline_key, refs_key = ckey(conv) .. ':seen', ckey(conv) .. ':timeline', ckey(conv) .. ':refs'
  local last = redis.call('HGET', ck, 'channel')
  if last and last ~= channel then
    note(conv, {kind = 'channel_switch', from = last, to = channel})
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

redis.call('SADD', seen_key, eid)
if other_sender then
  note(conv, {kind = 'note', text = 'message in this thread from a sender not linked to the customer'})
end
redis.call('RPUSH', timeline_key, entry)
redis.call('LTRIM', timeline_key, -cap, -1)
redis.call('HSET', ck, 'updated_at', now)
-- Replies go to whoever the conversation's customer last wrote from, never to a stranger
-- who joined the thread.
if not other_sender then redis.call('HSET', ck, 'reply_to', reply_to) end
if mid ~= '' then
  redis.call('SET', thread_key, conv, 'EX', ttl)
  redis.call('SADD', refs_key, thread_key)
end
if callid ~= '' then
  redis.call('SET', call_key, conv, 'EX', ttl)
  redis.call('SADD', refs_key, call_key)
end
for _, listed in ipairs(refkeys) do redis.call('SADD', refs_key, listed) end
for _, key in ipairs({ck, seen_key, timeline_key, refs_key, curkey, convskey}) do
  redis.call('EXPIRE', key, ttl)
end
local s = redis.call('HMGET', ck, 'state', 'agent_id', 'offer_id', 'last_agent', 'customer_id')
return {conv, outcome, s[1] or '', s[2] or '', s[3] or '', s[4] or '', s[5] or cid, notes}
