-- The agent holding a task records its outcome; the task is done.
-- KEYS: task hash, due zset, agent tasks set, unassigned zset
-- ARGV: agent_id, now_ms, outcome, note
-- Returns {'ok'} | {reason, status}
local t = redis.call('HMGET', KEYS[1], 'status', 'agent_id', 'id')
if not t[1] then return {'task_not_found', ''} end
if t[1] == 'done' then return {'task_done', t[1]} end
if t[1] ~= 'accepted' or t[2] ~= ARGV[1] then return {'not_held_by_agent', t[1]} end
redis.call('HSET', KEYS[1], 'status', 'done', 'done_at', ARGV[2], 'outcome', ARGV[3],
  'note', ARGV[4])
redis.call('ZREM', KEYS[2], t[3])
redis.call('ZREM', KEYS[4], t[3])
redis.call('SREM', KEYS[3], t[3])
return {'ok'}
