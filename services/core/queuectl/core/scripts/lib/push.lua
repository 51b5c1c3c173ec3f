-- push_job(queue, wake, id, front, job, ready_at): put an id on a queue, record in its job
-- hash since when it is ready to run (ready_at: what the wait-time metric and the oldest
-- job's age measure from, so a deliberate delay or a retry's back-off never counts as
-- waiting), and arm the queue's wake list.
-- Idle workers block on the wake list, and one marker wakes one of them; a marker
-- already there will wake someone, so only an absent (empty) list gets one. A wake
-- key of the wrong type is skipped: jobs still flow, idle workers just wake later.
local function push_job(queue, wake, id, front, job, ready_at)
  redis.call('HSET', job, 'ready_at', ready_at)
  redis.call(front and 'LPUSH' or 'RPUSH', queue, id)
  if redis.call('TYPE', wake)['ok'] == 'none' then
    redis.call('RPUSH', wake, '1')
  end
end
