--[[ fetch: take the first pending job of the first non-empty queue, in priority order,
and lease it to a worker in the same step.

KEYS[1]           the worker's in-flight set   P:inflight:<worker>
KEYS[2]           job hash prefix              P:jobs:   (job hash = prefix .. id)
KEYS[3]           quarantine zset              P:quarantine
KEYS[4]           quarantine reasons hash      P:quarantine:why
KEYS[5 .. 4+n]    queue lists, highest priority first
KEYS[5+n .. 4+2n] their wake lists, same order

ARGV[1] worker id   ARGV[2] n (number of queues)   ARGV[3] job-timeout policy ("0" = none)

Returns {1, notes, id, lease, command, timeout, attempts, queue, trace_context, env,
          ready_at, now}:
          a job, leased; timeout is the job's own, else ARGV[3] ("0" = none); since
          when it was ready ("" if unknown) and the server's time of this fetch;
        {0, notes}   every queue is empty (or unusable);
        {2, notes}   nothing taken yet but this call stopped early: call again;
        {-90, why}   the in-flight set has the wrong type; {-91, why} NOPERM.
notes lists what was set aside on the way: ids moved to quarantine (their record
cannot be used), queue keys of the wrong type (skipped, so other queues still flow).

Writes: 1: 1 3 4 rest jobs | 0: 3 4 rest | 2: 3 4 rest | -90: none | -91: none

The id moves from the queue into the in-flight set inside this script, so a
worker that dies at any point after it leaves a recoverable trace: the job is
never held only in a worker's memory. The lease counter grows on every fetch;
finish scripts compare it, which fences out a worker whose job was taken over.
The job hash key is built from KEYS[2]; with a hash-tagged prefix it shares
the slot of every other key, which keeps the script Redis Cluster safe.
]]
--- @include "time"
--- @include "guard"
--- @include "job"
--- @include "quarantine"
--- @include "push"

local inflight, prefix, qzset, qwhy = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local worker, n = ARGV[1], tonumber(ARGV[2])
local why = bad_type(inflight, 'set')
if why then return {DATA_ERROR, why} end
local checks = {{'SADD', inflight, 'x'}, {'ZADD', qzset, '0', 'x'}, {'HSET', qwhy, 'x', 'x'}}
for i = 1, n do
  checks[#checks + 1] = {'LPOP', KEYS[4 + i]}
  checks[#checks + 1] = {'RPUSH', KEYS[4 + n + i], '1'}
end
why = denied(checks)
if why then return {NO_PERM, why} end
local now, nows = server_time()
local notes = {}
local quarantine_why = quarantine_unusable(qzset, qwhy)

-- Ids set aside (stale, vanished, quarantined) per call are bounded so that one call
-- stays short whatever sits in the queues; {2} tells the caller to call again.
local budget = 100
for i = 1, n do
  local queue = KEYS[4 + i]
  why = bad_type(queue, 'list')
  if why then
    notes[#notes + 1] = 'skipped queue: ' .. why
  else
    while true do
      local id = redis.call('LINDEX', queue, 0)
      if not id then break end
      if budget == 0 then return {2, notes} end
      budget = budget - 1
      local job = prefix .. id
      local rec, bad
      if is_name(id) then rec, bad = read_job(job, id) else bad = 'invalid job id' end
      if rec then
        why = denied({{'HSET', job, 'state', 'x'}})
        if why then return {NO_PERM, why} end
      end
      if bad then
        if quarantine_why then
          notes[#notes + 1] = 'skipped queue ' .. queue .. ': its head ' .. id .. ' cannot be '
            .. 'quarantined: ' .. quarantine_why
          break
        end
        redis.call('LPOP', queue)
        quarantine(qzset, qwhy, id, bad, 'fetch', '', now)
        notes[#notes + 1] = 'quarantined ' .. id .. ': ' .. bad
      elseif not rec or rec.state ~= 'pending' then
        -- A stale entry: the record vanished (purged, expired) or is in another state
        -- (a second entry of an id already taken). Dropped, never run.
        redis.call('LPOP', queue)
      else
        redis.call('LPOP', queue)
        local lease = tonumber(rec.lease) + 1
        local attempts = tonumber(rec.attempts) + 1
        redis.call('HSET', job, 'state', 'processing', 'worker', worker, 'lease', lease,
          'attempts', attempts, 'started_at', nows, 'updated_at', nows)
        redis.call('SADD', inflight, id)
        -- One marker wakes one idle worker; re-arm so the others see remaining work.
        for j = 1, n do
          local q, w = KEYS[4 + j], KEYS[4 + n + j]
          if key_type(q) == 'list' and key_type(w) == 'none' then
            redis.call('RPUSH', w, '1')
          end
        end
        local timeout = rec.timeout ~= '' and rec.timeout or ARGV[3]
        return {1, notes, id, lease, rec.command, timeout, attempts, rec.queue,
          rec.trace_context, rec.env, rec.ready_at, nows}
      end
    end
  end
end
return {0, notes}
