-- Shared steps of the scripts that end a worker's hold on a job (complete, fail, release).
--- @include "quarantine"

-- check_hold(rec, bad, job_id, inflight, worker, lease): may this worker write the outcome?
-- Returns 'ok' when it holds the job's lease, 'lost' when it does not (taken over,
-- cancelled, reaped: nothing may be written), 'gone' when the record vanished but
-- the id is still in this worker's in-flight set, 'corrupt' when the record cannot
-- be read and this worker holds the id (the job goes to quarantine).
local function check_hold(rec, bad, id, inflight, worker, lease)
  if bad then
    return redis.call('SISMEMBER', inflight, id) == 1 and 'corrupt' or 'lost'
  end
  if not rec then
    return redis.call('SISMEMBER', inflight, id) == 1 and 'gone' or 'lost'
  end
  if rec.lease ~= lease or rec.worker ~= worker then return 'lost' end
  return 'ok'
end

-- park(...): move a held job from the in-flight set to quarantine; the caller has
-- checked that the quarantine keys are usable.
local function park(inflight, qzset, qwhy, id, why, by, state, now)
  redis.call('SREM', inflight, id)
  quarantine(qzset, qwhy, id, why, by, state, now)
end
