-- Move a waiting conversation from one queue to another (overflow, closed hours), keeping
-- its place by total wait; time in the new queue starts now, so relaxation and overflow
-- count afresh there and two queues that back each other up cannot ping-pong every cycle.
-- KEYS: the conversation, the from queue, the to queue, queues
-- ARGV: conversation_id, from_queue, to_queue, now_ms
-- Returns {'ok'} or {'not_waiting_there'}.
local ck, from_key, to_key, queues_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local conv, from, to, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local c = redis.call('HMGET', ck, 'state', 'queue')
if c[1] ~= 'waiting' or c[2] ~= from then return {'not_waiting_there'} end
local score = redis.call('ZSCORE', from_key, conv)
redis.call('ZREM', from_key, conv)
redis.call('ZADD', to_key, score or now, conv)
redis.call('SADD', queues_key, to)
redis.call('HSET', ck, 'queue', to, 'queue_since', now, 'overflowed_from', from)
return {'ok'}
