-- Undo reserve.lua for an event the broker never acknowledged, so a retry can succeed.
-- KEYS: the dedupe key, the event's inbound copy, the pending zset
-- ARGV: event_id
local dedupe_key, copy_key, pending_key = KEYS[1], KEYS[2], KEYS[3]
local eid = ARGV[1]
if redis.call('GET', dedupe_key) == 'pending:' .. eid then redis.call('DEL', dedupe_key) end
redis.call('DEL', copy_key)
redis.call('ZREM', pending_key, eid)
return 1
