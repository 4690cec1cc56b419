-- Store a directory record and link its verified contacts to it, in one step.
-- A contact the record no longer lists is unlinked only if it still points at this customer
-- (the CRM may have moved it to someone else meanwhile).
-- KEYS: the directory record, the customer's idents set, then the identity keys of the
--       verified contacts
-- ARGV: customer_id, now_ms, source, n_fields, n field/value pairs (the record)
-- An empty record (n_fields = 0) removes the directory record and every link it made.
local record_key, idents_key = KEYS[1], KEYS[2]
local cid, now, source, n = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local new = {}
for i = 3, #KEYS do new[KEYS[i]] = true end
-- The links the record made last time, by full key name: derived (read from the record).
local old = cjson.decode(redis.call('HGET', record_key, 'links') or '[]')
for _, old_link_key in ipairs(old) do
  if not new[old_link_key] then
    if redis.call('HGET', old_link_key, 'customer_id') == cid then redis.call('DEL', old_link_key) end
    redis.call('SREM', idents_key, old_link_key)
  end
end
redis.call('DEL', record_key)
if n == 0 then return 0 end
local links = {}
for i = 3, #KEYS do
  local link_key = KEYS[i]
  redis.call('DEL', link_key)
  redis.call('HSET', link_key, 'customer_id', cid, 'evidence', 'directory', 'at', now, 'source', source)
  redis.call('SADD', idents_key, link_key)
  links[#links + 1] = link_key
end
local fields = {}
for i = 5, 4 + 2 * n do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', record_key, 'links', #links > 0 and cjson.encode(links) or '[]', unpack(fields))
return #links
