-- Reserve (channel, channel_message_id) for a new inbound event and record it in the inbound
-- ledger, in one step: either the message is new, and both the dedupe key and the ledger
-- entry exist, or it was seen before and nothing changes.
-- ARGV: prefix, dedupe_key, event_id, dedupe_ttl_s, partition_key, envelope_bytes, now_ms,
--       copy_ttl_s
-- Returns '' when reserved, else the existing dedupe value (an event id or pending:<id>).
local p, dk, eid, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local ok = redis.call('SET', dk, 'pending:' .. eid, 'NX', 'EX', ttl)
if not ok then return redis.call('GET', dk) or '' end
local ck = p .. ':inbound:copy:' .. eid
redis.call('HSET', ck, 'key', ARGV[5], 'value', ARGV[6])
redis.call('EXPIRE', ck, tonumber(ARGV[8]))
redis.call('ZADD', p .. ':inbound:pending', tonumber(ARGV[7]), eid)
return ''
