-- Shared steps of the scripts that end a worker's hold on a job (complete, fail, release).
--- @include "quarantine"
--- @include "job"

-- check_hold(rec, bad, job_id, inflight, worker, lease): may this worker write the outcome?
-- Returns 'ok' when it holds the job's lease, 'lost' when it does not (taken over,
-- cancelled, reaped: nothing may be written), 'gone' when the record vanished but
-- the id is still in this worker's in-flight set, 'corrupt' when the record cannot
-- be read and this worker holds the id (the job goes to quarantine), 'badset' when the
-- in-flight set has the wrong type (the caller answers DATA_ERROR).
local function check_hold(rec, bad, id, inflight, worker, lease)
  if bad or not rec then
    local held = try('SISMEMBER', inflight, id)
    if not held then return 'badset' end
    if held == 0 then return 'lost' end
    return bad and 'corrupt' or 'gone'
  end
  if rec.lease ~= lease or rec.worker ~= worker then return 'lost' end
  return 'ok'
end

-- let_go(inflight, id): the first write of a finish: drop the id from the in-flight set.
-- SREM refuses a key of the wrong type before writing anything, so it is the in-flight
-- set's type check too: nil when done, else why not (nothing was written).
local function let_go(inflight, id)
  if try('SREM', inflight, id) then return nil end
  return 'key ' .. inflight .. ' is a ' .. key_type(inflight) .. ', not a set'
end

-- park(...): move a held job from the in-flight set to quarantine; the caller has
-- checked that the quarantine keys are usable. Returns why not when the in-flight set
-- has the wrong type (then nothing was written).
local function park(inflight, qzset, qwhy, id, why, by, state, now)
  local bad = let_go(inflight, id)
  if bad then return bad end
  quarantine(qzset, qwhy, id, why, by, state, now)
  return nil
end

-- hold_of(job, inflight, id, worker, lease, queue): the record and what the caller may do
-- with it (check_hold); given a queue, another queue in the record counts as 'lost'.
local function hold_of(job, inflight, id, worker, lease, queue)
  local rec, bad = read_job(job, id)
  local hold = check_hold(rec, bad, id, inflight, worker, lease)
  if hold == 'ok' and queue and rec.queue ~= queue then hold = 'lost' end
  return rec, bad, hold
end

-- unheld(...): after the caller's checks, the reply when it must not write its outcome:
-- {-3} (the record vanished: the id leaves the in-flight set), {QUARANTINED, why} (the
-- job is parked, `what` saying what the run did), {DATA_ERROR, why} (it cannot even be
-- parked); nil when the caller goes on.
local function unheld(hold, bad, rec, inflight, qzset, qwhy, id, what, by, now)
  if hold == 'badset' then
    return {DATA_ERROR, 'key ' .. inflight .. ' is a ' .. key_type(inflight) .. ', not a set'}
  end
  if hold == 'gone' then
    redis.call('SREM', inflight, id)
    return {-3}
  end
  if not bad then return nil end
  local why = quarantine_unusable(qzset, qwhy)
  if why then return {DATA_ERROR, why} end
  why = park(inflight, qzset, qwhy, id, what .. ', but ' .. bad, by, rec and rec.state, now)
  if why then return {DATA_ERROR, why} end
  return {QUARANTINED, bad}
end
