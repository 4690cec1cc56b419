-- Open the satisfaction survey of a resolved conversation, once per conversation.
-- Never changes the conversation's state: it only records which survey belongs to it.
-- KEYS: conv hash, survey hash
-- ARGV: survey_id, now_ms, window_ms, keep_s, agent_id, resolve_event_id
-- Returns {'ok', customer_id, channel, reply_to, category}
--       | {'exists', survey_id, resolve_event_id of the survey}
--       | {'not_resolved', state} | {'conversation_not_found'}
local ck, sk = KEYS[1], KEYS[2]
local sid, now, window, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local c = redis.call('HMGET', ck, 'state', 'customer_id', 'channel', 'reply_to', 'category',
  'survey_id', 'id')
if not c[1] then return {'conversation_not_found'} end
if c[6] then
  return {'exists', c[6], redis.call('HGET', sk, 'resolve_event') or ''}
end
if c[1] ~= 'resolved' then return {'not_resolved', c[1]} end
local reply_to = c[4] or '{}'
local rt = cjson.decode(reply_to)
local channel = rt['channel'] or c[3] or ''
local party = ''
local from = rt['from'] or {}
if channel == 'chat' and from['visitor_id'] then party = 'visitor_id:' .. from['visitor_id'] end
if channel == 'app' and from['app_user_id'] then party = 'app_user_id:' .. from['app_user_id'] end
redis.call('HSET', ck, 'survey_id', sid)
redis.call('HSET', sk, 'id', sid, 'conversation_id', c[7] or '', 'customer_id', c[2] or '',
  'channel', channel, 'party', party, 'agent_id', ARGV[5], 'category', c[5] or '',
  'status', 'sent', 'sent_at', now, 'expires_at', now + window, 'resolve_event', ARGV[6])
redis.call('EXPIRE', sk, keep)
return {'ok', c[2] or '', channel, reply_to, c[5] or ''}
