-- Who sent a message, from the evidence it carries, in one round trip.
-- Tries each proven contact (strongest first) against the identity links, then the web
-- visitor's login link. When the sender is identified and came with a visitor cookie, links
-- that cookie to the customer for a while (the same browser just proved who it is).
-- KEYS: n identity keys (one per proven contact, strongest first), the visitor's identity
--       key (named even when there is no visitor: then never touched), then the current-
--       conversation key (cust:{anon}:open) of each anonymous id to check for merging
-- ARGV: prefix, now_ms, visitor_link_ttl_s, visitor_id ('' if none), the visitor's anonymous
--       id ('' if none), n, n pairs (kind, evidence), then the anonymous ids to check, in
--       the order of their keys
-- Returns {customer_id | '', kind, evidence, {directory record, flat}, {anonymous ids to fold:
--          those with a current conversation, and always the visitor's, whose anonymous
--          message may still be on its way to the session stage on another partition}}
local p, now, vttl, visitor = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local vanon, n = ARGV[5], tonumber(ARGV[6])
local visitor_key = KEYS[n + 1]
-- Keys of the customer the links name: known only once a link is read (derived).
local function customer_key(id) return p .. ':customer:' .. id end
local function idents_key(id) return p .. ':cust:' .. id .. ':idents' end
local cid, by, ev = false, '', ''
for i = 1, n do
  local kind, evidence = ARGV[5 + i * 2], ARGV[6 + i * 2]
  local linked = redis.call('HGET', KEYS[i], 'customer_id')
  if linked then cid, by, ev = linked, kind, evidence; break end
end
if not cid and visitor ~= '' then
  local linked = redis.call('HMGET', visitor_key, 'customer_id', 'evidence')
  if linked[1] then cid, by, ev = linked[1], 'visitor_id', 'visitor_link:' .. (linked[2] or '') end
end
if not cid then return {'', '', '', {}, {}} end
if visitor ~= '' and by ~= 'visitor_id' then
  redis.call('HSET', visitor_key, 'customer_id', cid, 'evidence', 'login:' .. by, 'at', now,
    'source', 'inbound')
  redis.call('EXPIRE', visitor_key, vttl)
  redis.call('SADD', idents_key(cid), visitor_key)
end
local merges = {}
if vanon ~= '' and by ~= 'visitor_id' then merges[1] = vanon end
local first_anon = 7 + n * 2
for i = first_anon, #ARGV do
  local anon = ARGV[i]
  if anon ~= cid and anon ~= vanon and redis.call('EXISTS', KEYS[n + 2 + i - first_anon]) == 1 then
    merges[#merges + 1] = anon
  end
end
return {cid, by, ev, redis.call('HGETALL', customer_key(cid)), merges}
