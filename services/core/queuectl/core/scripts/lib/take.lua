-- take_next(...): the fetch step of fetch.lua and finish_fetch.lua: pop the first
-- pending job of the first non-empty queue, in priority order, and lease it.
--   inflight, prefix, qzset, qwhy   the worker's in-flight set (whose type the caller
--                                   has checked), the job hash prefix, the quarantine keys
--   base, n                         queue i is KEYS[base + i], its wake list KEYS[base + n + i]
--   worker, timeout_policy, nows    the worker id, the job-timeout policy ("0" = none), now
--   rearm                           re-arm wake lists (see below)
--   tag                             the worker's number for this call, kept in the record
--                                   (fetch_tag): the worker's reconcile tells by it a job
--                                   whose reply is still on its way from an orphan
-- Returns the reply of fetch.lua ({1, ...}, {0, notes}, {2, notes} or {-91, why}).
--- @include "guard"
--- @include "job"
--- @include "quarantine"

-- rearm_wakes(base, n): put a marker on the wake list of each queue that holds ids and has
-- none (queue i is KEYS[base + i], its wake list KEYS[base + n + i]).
local function rearm_wakes(base, n)
  for j = 1, n do
    local q, w = KEYS[base + j], KEYS[base + n + j]
    if (try('LLEN', q) or 0) > 0 and try('LLEN', w) == 0 then
      redis.call('RPUSH', w, '1')
    end
  end
end

local function take_next(inflight, prefix, qzset, qwhy, base, n, worker, timeout_policy, now,
                         nows, rearm, tag)
  local notes = {}
  local quarantine_why, checked = nil, false
  -- Ids set aside (stale, vanished, quarantined) per call are bounded so that one call
  -- stays short whatever sits in the queues; {2} tells the caller to call again.
  local budget = 100
  for i = 1, n do
    local queue = KEYS[base + i]
    while true do
      if budget == 0 then return {2, notes} end
      -- LPOP checks the queue's type as it pops; an id that must stay is pushed back to
      -- the front, which leaves the list exactly as it was.
      local id, err = try('LPOP', queue)
      if err then
        notes[#notes + 1] = 'skipped queue: key ' .. queue .. ' is a ' .. key_type(queue)
          .. ', not a list'
        break
      end
      if not id then break end
      budget = budget - 1
      local job = prefix .. id
      local rec, bad
      if is_name(id) then rec, bad = read_job(job, id) else bad = 'invalid job id' end
      if rec then
        local why = denied({{'HSET', job, 'state', 'x'}})
        if why then
          redis.call('LPUSH', queue, id)
          return {NO_PERM, why}
        end
      end
      if bad then
        if not checked then quarantine_why, checked = quarantine_unusable(qzset, qwhy), true end
        if quarantine_why then
          redis.call('LPUSH', queue, id)
          notes[#notes + 1] = 'skipped queue ' .. queue .. ': its head ' .. id .. ' cannot be '
            .. 'quarantined: ' .. quarantine_why
          break
        end
        quarantine(qzset, qwhy, id, bad, 'fetch', '', now)
        notes[#notes + 1] = 'quarantined ' .. id .. ': ' .. bad
      elseif rec and rec.state == 'pending' then
        local lease = tonumber(rec.lease) + 1
        local attempts = tonumber(rec.attempts) + 1
        redis.call('HSET', job, 'state', 'processing', 'worker', worker, 'lease', lease,
          'attempts', attempts, 'started_at', nows, 'spawned_at', '', 'updated_at', nows,
          'fetch_tag', tag)
        redis.call('SADD', inflight, id)
        -- One marker wakes one idle worker; re-arm so the others see remaining work.
        -- Only idle slots take markers, and each fetches with rearm after waking: a
        -- busy slot's fetch takes none and need not put one back.
        if rearm then rearm_wakes(base, n) end
        local timeout = rec.timeout ~= '' and rec.timeout or timeout_policy
        return {1, notes, id, lease, rec.command, timeout, attempts, rec.queue,
          rec.trace_context, rec.env, rec.ready_at, nows}
      end
      -- Otherwise a stale entry: the record vanished (purged, expired) or is in another
      -- state (a second entry of an id already taken). Dropped (popped), never run.
    end
  end
  return {0, notes}
end
