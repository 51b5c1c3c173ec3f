-- note_queue(queues, name): keep a queue's name in the queue names set while any of its
-- structures holds a job (prune_queues.lua drops names whose structures are all empty).
-- The set is an index: one of the wrong type is left alone (doctor reports it).
local function note_queue(queues, name)
  local t = redis.call('TYPE', queues)['ok']
  if t == 'set' or t == 'none' then redis.call('SADD', queues, name) end
end
