-- Open a callback or follow-up task once (its id is derived from what caused it).
-- KEYS: task hash, tasks zset, due zset, unassigned zset, agent tasks set (or a dummy key),
--       the conversation's task set (erasure)
-- ARGV: now_ms, due_at, keep_s, then field/value pairs of the task
-- Returns {'ok'} | {'exists'}
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
local now, due, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local fields = {}
local agent, status = '', 'open'
for i = 4, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]; fields[#fields + 1] = ARGV[i + 1]
  if ARGV[i] == 'agent_id' then agent = ARGV[i + 1] end
  if ARGV[i] == 'status' then status = ARGV[i + 1] end
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('EXPIRE', KEYS[1], keep)
redis.call('ZADD', KEYS[2], now, redis.call('HGET', KEYS[1], 'id'))
redis.call('ZADD', KEYS[3], due, redis.call('HGET', KEYS[1], 'id'))
if status == 'open' then
  redis.call('ZADD', KEYS[4], due, redis.call('HGET', KEYS[1], 'id'))
elseif agent ~= '' then
  redis.call('SADD', KEYS[5], redis.call('HGET', KEYS[1], 'id'))
end
redis.call('SADD', KEYS[6], redis.call('HGET', KEYS[1], 'id'))
return {'ok'}
