-- Append an entry (agent reply, bot answer, system note) to a conversation's timeline once.
-- ARGV: prefix, conversation_id, event_id, entry_json, history_cap, now_ms,
--       message_id ('' if none: the Message-ID of an outbound email, mapped to the
--       conversation so the customer's reply finds it), ttl_s
-- Returns 1 when appended, 0 when the event was already applied, -1 when no such conversation.
local p, conv, eid, entry, cap, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local mid, ttl = ARGV[7] or '', tonumber(ARGV[8] or '0')
local ck = p .. ':conv:' .. conv
if redis.call('EXISTS', ck) == 0 then return -1 end
if redis.call('SADD', ck .. ':seen', eid) == 0 then return 0 end
redis.call('RPUSH', ck .. ':timeline', entry)
redis.call('LTRIM', ck .. ':timeline', -cap, -1)
redis.call('HSET', ck, 'updated_at', now)
if mid ~= '' and ttl > 0 then
  redis.call('SET', p .. ':thread:' .. mid, conv, 'EX', ttl)
  redis.call('SADD', ck .. ':refs', p .. ':thread:' .. mid)
end
return 1
