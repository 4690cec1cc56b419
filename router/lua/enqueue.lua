-- Put an unplaced conversation in its queue (or move it to another), keeping its first
-- enqueue time so aging counts the whole wait.
-- ARGV: prefix, conversation_id, queue, now_ms, head_start_ms (priority, as ms of wait), job_json
-- Returns {'ok', enqueued_at} or {'conversation_not_routable', state}.
local p, conv, q, now, head = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local job = ARGV[6]
local ck = p .. ':conv:' .. conv
local c = redis.call('HMGET', ck, 'state', 'queue', 'enqueued_at')
if c[1] ~= 'open' and c[1] ~= 'waiting' then return {'conversation_not_routable', c[1] or 'missing'} end
if c[2] and c[2] ~= q then redis.call('ZREM', p .. ':queue:' .. c[2], conv) end
local since = tonumber(c[3] or now)
redis.call('ZADD', p .. ':queue:' .. q, since - head, conv)
redis.call('SADD', p .. ':queues', q)
redis.call('HSET', ck, 'state', 'waiting', 'queue', q, 'enqueued_at', since, 'job', job,
  'head_start', head)
return {'ok', tostring(since)}
