-- Store a directory record and link its verified contacts to it, in one step.
-- A contact the record no longer lists is unlinked only if it still points at this customer
-- (the CRM may have moved it to someone else meanwhile).
-- ARGV: prefix, customer_id, now_ms, source, n_fields, n field/value pairs (the record),
--       then the identity keys (full names) of the verified contacts
-- An empty record (n_fields = 0) removes the directory record and every link it made.
local p, cid, now, source, n = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local rk = p .. ':customer:' .. cid
local ik = p .. ':cust:' .. cid .. ':idents'
local new = {}
for i = 6 + 2 * n, #ARGV do new[ARGV[i]] = true end
local old = cjson.decode(redis.call('HGET', rk, 'links') or '[]')
for _, k in ipairs(old) do
  if not new[k] then
    if redis.call('HGET', k, 'customer_id') == cid then redis.call('DEL', k) end
    redis.call('SREM', ik, k)
  end
end
redis.call('DEL', rk)
if n == 0 then return 0 end
local links = {}
for i = 6 + 2 * n, #ARGV do
  local k = ARGV[i]
  redis.call('DEL', k)
  redis.call('HSET', k, 'customer_id', cid, 'evidence', 'directory', 'at', now, 'source', source)
  redis.call('SADD', ik, k)
  links[#links + 1] = k
end
local fields = {}
for i = 6, 5 + 2 * n do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', rk, 'links', #links > 0 and cjson.encode(links) or '[]', unpack(fields))
return #links
