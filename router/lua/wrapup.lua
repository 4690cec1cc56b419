-- Free the capacity of every wrap-up that is due. ZREM decides who frees a slot, so two
-- workers running this at once free each slot exactly once.
-- KEYS: wrapups, agents:load
-- ARGV: now_ms, limit
-- Returns the list of agent ids that got a slot back.
local wk, load_key = KEYS[1], KEYS[2]
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local due = redis.call('ZRANGEBYSCORE', wk, '-inf', now, 'LIMIT', 0, limit)
local out = {}
for _, m in ipairs(due) do
  if redis.call('ZREM', wk, m) == 1 then
    local agent, channel = string.match(m, '^([^|]+)|([^|]+)|')
    give_back(load_key, agent, channel)
    table.insert(out, agent)
  end
end
return out
