-- note_queue(queues, name): keep a queue's name in the queue names set while any of its
-- structures holds a job (prune_queues.lua drops names whose structures are all empty).
-- The set is an index: one of the wrong type is left alone (doctor reports it).
--- @include "guard"
local function note_queue(queues, name)
  try('SADD', queues, name)
end
