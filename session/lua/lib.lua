-- Shared moves of the conversation state machine (session/conversation.py), prepended to
-- every script that changes a conversation or an agent's load. p is the key prefix.
local function give_back(p, agent, channel)
  -- An agent's slot on a channel is free again; the field goes when it reaches zero.
  if not agent or not channel or agent == '' or channel == '' then return end
  local lk, field = p .. ':agents:load', agent .. '|' .. channel
  if tonumber(redis.call('HINCRBY', lk, field, -1)) <= 0 then redis.call('HDEL', lk, field) end
end
local function requeue(p, ck, conv, q, score)
  -- Back in queue q at `score` (its old place, less any head start): waiting, never lost.
  redis.call('ZADD', p .. ':queue:' .. q, score, conv)
  redis.call('SADD', p .. ':queues', q)
  redis.call('HSET', ck, 'state', 'waiting', 'queue', q)
end
