-- Renew the leases of the sockets a gateway holds (every third of the lease).
-- KEYS: the owners' leases (session/keys.py socket_leases), one per socket
-- ARGV: lease ms, then the connection id of each key, in the same order
-- A lease that ran out meanwhile (the gateway stalled, Redis restarted) is taken again: the
-- socket is open, so it counts.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
for i, k in ipairs(KEYS) do
  redis.call('ZADD', k, now + lease, ARGV[i + 1])
  redis.call('PEXPIRE', k, lease)
end
return #KEYS
