-- Move a waiting conversation from one queue to another (overflow, closed hours), keeping
-- its place by total wait; time in the new queue starts now, so relaxation and overflow
-- count afresh there and two queues that back each other up cannot ping-pong every cycle.
-- ARGV: prefix, conversation_id, from_queue, to_queue, now_ms
-- Returns {'ok'} or {'not_waiting_there'}.
local p, conv, from, to, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local ck = p .. ':conv:' .. conv
local c = redis.call('HMGET', ck, 'state', 'queue')
if c[1] ~= 'waiting' or c[2] ~= from then return {'not_waiting_there'} end
local score = redis.call('ZSCORE', p .. ':queue:' .. from, conv)
redis.call('ZREM', p .. ':queue:' .. from, conv)
redis.call('ZADD', p .. ':queue:' .. to, score or now, conv)
redis.call('SADD', p .. ':queues', to)
redis.call('HSET', ck, 'queue', to, 'queue_since', now, 'overflowed_from', from)
return {'ok'}
