-- Store one knowledge article with the next version, and bump the base's revision.
-- KEYS: articles hash, revision counter. ARGV: article id, article JSON (without version),
-- now_ms. Returns the new version.
local prev = redis.call('HGET', KEYS[1], ARGV[1])
local version = 1
if prev then version = (cjson.decode(prev).version or 0) + 1 end
local a = cjson.decode(ARGV[2])
a.version = version
a.updated_at = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(a))
redis.call('INCR', KEYS[2])
return version
