-- The assigned agent hands a conversation over: to a queue, or to a named agent (pinned, so
-- routing offers it to that agent only until they decline). Same conversation, same
-- timeline, so the whole history travels with it. The transferring agent's slot is freed and
-- it is not offered the conversation back for the decline cool-down.
-- KEYS: the conversation, its declined set, agents:load, the from agent's conversations,
--       the to queue, queues, the to agent (named even when there is none: never touched)
-- ARGV: conversation_id, from_agent, now_ms, to_queue, head_start_ms, job_json,
--       decline_ms, to_agent ('' for none)
-- Returns {'ok', channel, customer_id} or {reason, state}.
local ck, declined_key, load_key, from_convs_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local queue_key, queues_key, to_agent_key = KEYS[5], KEYS[6], KEYS[7]
local conv, from, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local q, head, job, decline, to = ARGV[4], tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7]), ARGV[8]
local c = redis.call('HMGET', ck, 'state', 'agent_id', 'assigned_channel', 'customer_id')
if not c[1] then return {'conversation_not_found', ''} end
if c[1] ~= 'assigned' or c[2] ~= from then return {'not_assigned_to_agent', c[1]} end
if to ~= '' and redis.call('EXISTS', to_agent_key) == 0 then return {'agent_not_found', to} end
give_back(load_key, from, c[3])
redis.call('SREM', from_convs_key, conv)
redis.call('HDEL', ck, 'agent_id', 'last_agent', 'last_agent_at')
requeue(queue_key, queues_key, ck, conv, q, now - head)
redis.call('HSET', ck, 'enqueued_at', now, 'queue_since', now,
  'job', job, 'head_start', head, 'transferred_at', now, 'transferred_by', from)
if decline > 0 then
  redis.call('ZADD', declined_key, now + decline, from)
  redis.call('EXPIRE', declined_key, math.ceil(decline / 1000) + 60)
  -- Routing reads the declined set only for conversations that may have one in force.
  if tonumber(redis.call('HGET', ck, 'declined_until') or '0') < now + decline then
    redis.call('HSET', ck, 'declined_until', now + decline)
  end
end
return {'ok', c[3], c[4] or ''}
