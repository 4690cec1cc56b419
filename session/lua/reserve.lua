-- Reserve (channel, channel_message_id) for a new inbound event and record it in the inbound
-- ledger, in one step: either the message is new, and both the dedupe key and the ledger
-- entry exist, or it was seen before and nothing changes.
-- KEYS: the dedupe key, the event's inbound copy, the pending zset
-- ARGV: event_id, dedupe_ttl_s, partition_key, envelope_bytes, now_ms, copy_ttl_s
-- Returns '' when reserved, else the existing dedupe value (an event id or pending:<id>).
local dedupe_key, copy_key, pending_key = KEYS[1], KEYS[2], KEYS[3]
local eid, ttl = ARGV[1], tonumber(ARGV[2])
local ok = redis.call('SET', dedupe_key, 'pending:' .. eid, 'NX', 'EX', ttl)
if not ok then return redis.call('GET', dedupe_key) or '' end
redis.call('HSET', copy_key, 'key', ARGV[3], 'value', ARGV[4])
redis.call('EXPIRE', copy_key, tonumber(ARGV[6]))
redis.call('ZADD', pending_key, tonumber(ARGV[5]), eid)
return ''
