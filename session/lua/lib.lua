-- Shared moves of the conversation state machine (session/conversation.py), prepended to
-- every script that changes a conversation or an agent's load. Keys come in by name.
local function give_back(load_key, agent, channel)
  -- An agent's slot on a channel is free again; the field goes when it reaches zero.
  if not agent or not channel or agent == '' or channel == '' then return end
  local field = agent .. '|' .. channel
  if tonumber(redis.call('HINCRBY', load_key, field, -1)) <= 0 then redis.call('HDEL', load_key, field) end
end
local function requeue(queue_key, queues_key, ck, conv, q, score)
  -- Back in queue q (queue_key) at `score` (its old place, less any head start): waiting.
  redis.call('ZADD', queue_key, score, conv)
  redis.call('SADD', queues_key, q)
  redis.call('HSET', ck, 'state', 'waiting', 'queue', q)
end
