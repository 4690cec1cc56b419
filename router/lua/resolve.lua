-- The assigned agent resolves a conversation: it leaves the agent and frees the capacity.
-- ARGV: prefix, conversation_id, agent_id, now_ms
-- Returns {'ok', channel, customer_id} or {reason, state}.
local p, conv, agent, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local ck = p .. ':conv:' .. conv
local c = redis.call('HMGET', ck, 'state', 'agent_id', 'assigned_channel', 'customer_id')
if not c[1] then return {'conversation_not_found', ''} end
if c[1] ~= 'assigned' or c[2] ~= agent then return {'not_assigned_to_agent', c[1]} end
local ak = p .. ':agent:' .. agent
redis.call('HSET', ck, 'state', 'resolved', 'resolved_at', now, 'resolved_by', agent)
redis.call('HDEL', ck, 'agent_id')
redis.call('SREM', ak .. ':convs', conv)
if tonumber(redis.call('HINCRBY', ak .. ':load', c[3], -1)) < 0 then
  redis.call('HSET', ak .. ':load', c[3], 0)
end
return {'ok', c[3], c[4] or ''}
