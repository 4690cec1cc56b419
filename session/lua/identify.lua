-- Who sent a message, from the evidence it carries, in one round trip.
-- Tries each proven contact (strongest first) against the identity links, then the web
-- visitor's login link. When the sender is identified and came with a visitor cookie, links
-- that cookie to the customer for a while (the same browser just proved who it is).
-- ARGV: prefix, now_ms, visitor_link_ttl_s, visitor_id ('' if none), the visitor's anonymous
--       id ('' if none), n, n triples (kind, normalized value, evidence), then anonymous ids
--       to check for merging
-- Returns {customer_id | '', kind, evidence, {directory record, flat}, {anonymous ids to fold:
--          those with a current conversation, and always the visitor's, whose anonymous
--          message may still be on its way to the session stage on another partition}}
local p, now, vttl, visitor = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local vanon, n = ARGV[5], tonumber(ARGV[6])
local cid, by, ev = false, '', ''
for i = 0, n - 1 do
  local kind, value, evidence = ARGV[7 + i * 3], ARGV[8 + i * 3], ARGV[9 + i * 3]
  local linked = redis.call('HGET', p .. ':ident:' .. kind .. ':' .. value, 'customer_id')
  if linked then cid, by, ev = linked, kind, evidence; break end
end
local vkey = p .. ':ident:visitor_id:' .. visitor
if not cid and visitor ~= '' then
  local linked = redis.call('HMGET', vkey, 'customer_id', 'evidence')
  if linked[1] then cid, by, ev = linked[1], 'visitor_id', 'visitor_link:' .. (linked[2] or '') end
end
if not cid then return {'', '', '', {}, {}} end
if visitor ~= '' and by ~= 'visitor_id' then
  redis.call('HSET', vkey, 'customer_id', cid, 'evidence', 'login:' .. by, 'at', now,
    'source', 'inbound')
  redis.call('EXPIRE', vkey, vttl)
  redis.call('SADD', p .. ':cust:' .. cid .. ':idents', vkey)
end
local merges = {}
if vanon ~= '' and by ~= 'visitor_id' then merges[1] = vanon end
for i = 7 + n * 3, #ARGV do
  local anon = ARGV[i]
  if anon ~= cid and anon ~= vanon and redis.call('EXISTS', p .. ':cust:' .. anon .. ':open') == 1 then
    merges[#merges + 1] = anon
  end
end
return {cid, by, ev, redis.call('HGETALL', p .. ':customer:' .. cid), merges}
