-- The assigned agent resolves a conversation: it leaves the agent; the capacity is freed at
-- once, or after the agent's wrap-up time (a member of the wrap-up ZSET that wrapup.lua
-- releases when due), so nobody is offered new work while still writing notes.
-- KEYS: the conversation, the agent, the agent's conversations, wrapups, agents:load
-- ARGV: conversation_id, agent_id, now_ms
-- Returns {'ok', channel, customer_id, wrap_up_until_ms} or {reason, state}.
local ck, ak, agent_convs_key, wrapups_key, load_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local conv, agent, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local c = redis.call('HMGET', ck, 'state', 'agent_id', 'assigned_channel', 'customer_id')
if not c[1] then return {'conversation_not_found', ''} end
if c[1] ~= 'assigned' or c[2] ~= agent then return {'not_assigned_to_agent', c[1]} end
redis.call('HSET', ck, 'state', 'resolved', 'resolved_at', now, 'resolved_by', agent,
  'last_agent_at', now)
redis.call('HDEL', ck, 'agent_id')
redis.call('SREM', agent_convs_key, conv)
local wrap = tonumber(redis.call('HGET', ak, 'wrap_up_s') or '0')
local until_ms = 0
if wrap > 0 then
  until_ms = now + wrap * 1000
  -- Unique per resolve: the same agent may resolve a reopened conversation again while the
  -- first wrap-up still runs, and each holds its own slot.
  local seq = redis.call('HINCRBY', ck, 'wrapup_seq', 1)
  redis.call('ZADD', wrapups_key, until_ms, agent .. '|' .. c[3] .. '|' .. conv .. '|' .. seq)
else
  give_back(load_key, agent, c[3])
end
return {'ok', c[3], c[4] or '', tostring(until_ms)}
