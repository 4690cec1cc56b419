-- Offer a task to one agent: only an open task, or one whose last offer expired.
-- KEYS: task hash
-- ARGV: agent_id, offer_id, now_ms, expires_at
-- Returns {'ok', previous_agent} | {reason, status}
local t = redis.call('HMGET', KEYS[1], 'status', 'offer_expires_at', 'agent_id', 'declined')
if not t[1] then return {'task_not_found', ''} end
local now = tonumber(ARGV[3])
if t[1] == 'offered' and tonumber(t[2] or '0') > now then return {'offer_pending', t[1]} end
if t[1] ~= 'open' and t[1] ~= 'offered' then return {'not_open', t[1]} end
local declined = t[4] or ''
if t[1] == 'offered' and t[3] and t[3] ~= '' then
  declined = declined .. t[3] .. ','  -- the last agent let it expire: try someone else
end
redis.call('HSET', KEYS[1], 'status', 'offered', 'agent_id', ARGV[1], 'offer_id', ARGV[2],
  'offer_expires_at', ARGV[4], 'declined', declined)
return {'ok', t[3] or ''}
