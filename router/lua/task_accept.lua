-- The agent a task was offered to takes it.
-- KEYS: task hash, unassigned zset, agent tasks set
-- ARGV: agent_id, now_ms
-- Returns {'ok'} | {reason, status}
local t = redis.call('HMGET', KEYS[1], 'status', 'agent_id', 'offer_expires_at', 'id')
if not t[1] then return {'task_not_found', ''} end
if t[1] == 'accepted' and t[2] == ARGV[1] then return {'ok'} end
if t[1] ~= 'offered' or t[2] ~= ARGV[1] then return {'not_offered_to_agent', t[1]} end
if tonumber(t[3] or '0') < tonumber(ARGV[2]) then return {'offer_expired', t[1]} end
redis.call('HSET', KEYS[1], 'status', 'accepted', 'accepted_at', ARGV[2])
redis.call('ZREM', KEYS[2], t[4])
redis.call('SADD', KEYS[3], t[4])
return {'ok'}
