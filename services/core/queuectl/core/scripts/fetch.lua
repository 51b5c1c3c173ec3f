--[[ fetch: take the first pending job of the first non-empty queue, in priority order,
and lease it to a worker in the same step.

KEYS[1]           the worker's in-flight set   P:inflight:<worker>
KEYS[2]           job hash prefix              P:jobs:   (job hash = prefix .. id)
KEYS[3]           quarantine zset              P:quarantine
KEYS[4]           quarantine reasons hash      P:quarantine:why
KEYS[5]           the worker's wakeup list     P:wakeup:<worker>
KEYS[6]           the worker's status hash     P:worker:<worker>
KEYS[7 .. 6+n]    queue lists, highest priority first
KEYS[7+n .. 6+2n] their wake lists, same order

ARGV[1] worker id   ARGV[2] n (number of queues)   ARGV[3] job-timeout policy ("0" = none)
ARGV[4] the worker's number for this call, kept in the job's record (fetch_tag): its
        reconcile tells by it a job whose reply is on its way from one whose reply was lost
ARGV[5] "1": take a job only while the worker's status hash exists (see below)

Returns {1, notes, id, lease, command, timeout, attempts, queue, trace_context, env,
          ready_at, now}:
          a job, leased; timeout is the job's own, else ARGV[3] ("0" = none); since
          when it was ready ("" if unknown) and the server's time of this fetch;
        {0, notes}   every queue is empty (or unusable), or the worker is stopping or
                     (ARGV[5]) counts as dead;
        {2, notes}   nothing taken yet but this call stopped early: call again;
        {-90, why}   the in-flight set has the wrong type; {-91, why} NOPERM.
notes lists what was set aside on the way: ids moved to quarantine (their record
cannot be used), queue keys of the wrong type (skipped, so other queues still flow).

Writes: 1: 1 3 4 rest jobs | 0: 3 4 rest | 2: 3 4 rest | -90: none | -91: none

The id moves from the queue into the in-flight set inside this script, so a
worker that dies at any point after it leaves a recoverable trace: the job is
never held only in a worker's memory. The lease counter grows on every fetch;
finish scripts compare it, which fences out a worker whose job was taken over.
Each queue is read by LPOP (which also checks its type); an id that must stay where it
was (its record cannot be quarantined now, or NOPERM) is pushed back to the front, so
the list is left exactly as it was. A wake list is re-armed when its queue still holds
ids, for the idle workers that wait on it.
An idle worker sends this script right behind its BLPOP on the wake lists, so that Redis
runs it the moment the BLPOP returns (worker/pool.py), which may be long after it was
sent. A worker's calls (ARGV[5]) take a job only while its status hash exists, which is
what the reaper counts as alive: a job is never leased to a worker already reaped, whose
in-flight set no reaper would read again. A stopping worker leaves a marker in its
wakeup list for as long as it drains; a call that finds one takes nothing either, and
re-arms the wake lists it may have emptied, for other workers. The job hash key is built from KEYS[2]; with a hash-tagged prefix it shares
the slot of every other key, which keeps the script Redis Cluster safe.
]]
--- @include "time"
--- @include "guard"
--- @include "take"

local inflight, prefix, qzset, qwhy, wakeup, status = KEYS[1], KEYS[2], KEYS[3], KEYS[4],
  KEYS[5], KEYS[6]
local worker, n = ARGV[1], tonumber(ARGV[2])
local why = bad_type(inflight, 'set')
if why then return {DATA_ERROR, why} end
local checks = {{'SADD', inflight, 'x'}, {'ZADD', qzset, '0', 'x'}, {'HSET', qwhy, 'x', 'x'},
  {'LLEN', wakeup}}
for i = 1, n do
  checks[#checks + 1] = {'LPOP', KEYS[6 + i]}
  checks[#checks + 1] = {'LPUSH', KEYS[6 + i], 'x'}
  checks[#checks + 1] = {'LLEN', KEYS[6 + i]}  -- read after the first write: checked here
  checks[#checks + 1] = {'LLEN', KEYS[6 + n + i]}
  checks[#checks + 1] = {'RPUSH', KEYS[6 + n + i], '1'}
end
why = denied(checks)
if why then return {NO_PERM, why} end
-- A wakeup list of another type is no stop marker (the worker's BLPOP reports it).
if key_type(wakeup) == 'list' and redis.call('LLEN', wakeup) > 0 then
  rearm_wakes(6, n)
  return {0, {}}
end
-- No re-arm here: the worker would take its own marker straight back, and spin until
-- its heartbeat wrote the hash again.
if ARGV[5] == '1' and key_type(status) == 'none' then return {0, {}} end
local now, nows = server_time()
return take_next(inflight, prefix, qzset, qwhy, 6, n, worker, ARGV[3], now, nows, true,
  ARGV[4] or '')
