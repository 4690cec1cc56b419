-- Undo reserve.lua for an event the broker never acknowledged, so a retry can succeed.
-- ARGV: prefix, dedupe_key, event_id
local p, dk, eid = ARGV[1], ARGV[2], ARGV[3]
if redis.call('GET', dk) == 'pending:' .. eid then redis.call('DEL', dk) end
redis.call('DEL', p .. ':inbound:copy:' .. eid)
redis.call('ZREM', p .. ':inbound:pending', eid)
return 1
