-- Append an entry (agent reply, bot answer, system note) to a conversation's timeline once.
-- KEYS: conversation, its seen-set, timeline, refs, and the thread key of message_id (only
--       when message_id is given)
-- ARGV: conversation_id, event_id, entry_json, history_cap, now_ms,
--       message_id ('' if none: the Message-ID of an outbound email, mapped to the
--       conversation so the customer's reply finds it), ttl_s
-- Returns 1 when appended, 0 when the event was already applied, -1 when no such conversation.
local conv_key, seen_key, timeline_key, refs_key, thread_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local conv, eid, entry, cap, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local mid, ttl = ARGV[6] or '', tonumber(ARGV[7] or '0')
if redis.call('EXISTS', conv_key) == 0 then return -1 end
if redis.call('SADD', seen_key, eid) == 0 then return 0 end
redis.call('RPUSH', timeline_key, entry)
redis.call('LTRIM', timeline_key, -cap, -1)
redis.call('HSET', conv_key, 'updated_at', now)
if mid ~= '' and ttl > 0 then
  redis.call('SET', thread_key, conv, 'EX', ttl)
  redis.call('SADD', refs_key, thread_key)
end
return 1
