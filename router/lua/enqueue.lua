-- Put an unplaced conversation in its queue (or move it to another), keeping its first
-- enqueue time so aging counts the whole wait; time in the current queue restarts on a move.
-- KEYS: the conversation, the queue, queues
-- ARGV: prefix, conversation_id, queue, now_ms, head_start_ms (priority, as ms of wait), job_json
-- Derived: the queue it waited in before (read from the conversation).
-- Returns {'ok', enqueued_at} or {'conversation_not_routable', state}.
local p, conv, q, now, head = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local job = ARGV[6]
local ck, queue_key, queues_key = KEYS[1], KEYS[2], KEYS[3]
local function old_queue_key(name) return p .. ':queue:' .. name end
local c = redis.call('HMGET', ck, 'state', 'queue', 'enqueued_at', 'queue_since')
if c[1] ~= 'open' and c[1] ~= 'waiting' then return {'conversation_not_routable', c[1] or 'missing'} end
local since = tonumber(c[3] or now)
local qsince = tonumber(c[4] or now)
if c[2] and c[2] ~= q then
  redis.call('ZREM', old_queue_key(c[2]), conv)
  qsince = now
end
redis.call('ZADD', queue_key, since - head, conv)
redis.call('SADD', queues_key, q)
redis.call('HSET', ck, 'state', 'waiting', 'queue', q, 'enqueued_at', since, 'queue_since', qsince,
  'job', job, 'head_start', head)
return {'ok', tostring(since)}
