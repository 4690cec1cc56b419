-- Admit one more socket of an owner (a visitor, an agent, a watcher) if fewer than the cap
-- are open on every gateway together. Each open socket holds a lease that its gateway renews
-- (socket_renew.lua); a dead gateway's leases run out, so its sockets stop counting.
-- KEYS[1]: the owner's leases (session/keys.py socket_leases)
-- ARGV: connection id, cap, lease ms
-- Returns 1 admitted (leased), 0 refused (the cap's worth of live leases exist)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease)
return 1
