-- Record a customer's answer to a survey: the first answer within the window wins.
-- Never touches the conversation: an answer is not a message and reopens nothing.
-- KEYS: survey hash, pending zset
-- ARGV: now_ms, score, comment, party ('' when a signed backend vouches), via
-- Returns {'ok', conversation_id, customer_id, channel, agent_id, category}
--       | {'survey_not_found'} | {'wrong_party'} | {'survey_expired', expires_at}
--       | {'survey_already_answered', score, answered_at}
local sk = KEYS[1]
local now = tonumber(ARGV[1])
local s = redis.call('HMGET', sk, 'status', 'expires_at', 'party', 'score', 'answered_at',
  'conversation_id', 'customer_id', 'channel', 'agent_id', 'category', 'id')
if not s[1] then return {'survey_not_found'} end
if ARGV[4] ~= '' and s[3] ~= ARGV[4] then return {'wrong_party'} end
if s[1] == 'answered' then return {'survey_already_answered', s[4] or '', s[5] or ''} end
if now > tonumber(s[2]) then return {'survey_expired', s[2]} end
redis.call('HSET', sk, 'status', 'answered', 'score', ARGV[2], 'comment', ARGV[3],
  'answered_at', now, 'via', ARGV[5])
redis.call('ZADD', KEYS[2], now, s[11])
return {'ok', s[6], s[7], s[8], s[9] or '', s[10] or ''}
