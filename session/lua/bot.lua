-- The bot's moves on a conversation (session/conversation.py): answer (open|bot -> bot) and
-- hand off (bot -> open, for routing to place; or open stays open), each at most once per
-- inbound event, and the hand-off at most once per conversation (`handoff_at`).
-- KEYS: conversation, its seen-set, timeline, bot replies hash
-- ARGV: action ('answer'|'handoff'), event_id, entry_json ('' for
--       none), reply_json ('' for none: kept so a redelivered event re-publishes it), now_ms,
--       history_cap, ttl_s, memory_json (bot_unhelpful, bot_last_intent, bot_given),
--       handoff_json (handoff only)
-- Returns {1, state} when the move was made, {0, state or reason} when it was not.
local ck, seen_key, timeline_key, bk = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local action, eid = ARGV[1], ARGV[2]
local entry, reply, now = ARGV[3], ARGV[4], ARGV[5]
local cap, ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local memory = cjson.decode(ARGV[8])
local st = redis.call('HGET', ck, 'state')
if not st then return {0, 'missing'} end
if redis.call('HEXISTS', ck, 'handoff_at') == 1 then return {0, 'handed_off'} end
if st ~= 'open' and st ~= 'bot' then return {0, st} end
if redis.call('HEXISTS', bk, eid) == 1 then return {0, 'duplicate'} end

local function add_entry()
  if entry == '' then return end
  if redis.call('SADD', seen_key, eid .. '.bot') == 0 then return end
  redis.call('RPUSH', timeline_key, entry)
  redis.call('LTRIM', timeline_key, -cap, -1)
end

if action == 'answer' then
  redis.call('HSET', ck, 'state', 'bot', 'bot_unhelpful', memory.bot_unhelpful or 0,
    'bot_last_intent', memory.bot_last_intent or '', 'bot_given', cjson.encode(memory.bot_given or {}),
    'updated_at', now)
  redis.call('HINCRBY', ck, 'bot_turns', 1)
else
  redis.call('HSET', ck, 'state', 'open', 'handoff_at', now, 'handoff', ARGV[9], 'updated_at', now)
end
add_entry()
redis.call('HSET', bk, eid, reply)
redis.call('EXPIRE', bk, ttl)
return {1, redis.call('HGET', ck, 'state')}
