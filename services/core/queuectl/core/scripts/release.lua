--[[ release: hand a held job back to the front of its queue (worker shutting down, a
run the worker's environment could not start, or a job whose fetch reply was lost).

KEYS[1] job hash           P:jobs:<id>
KEYS[2] in-flight set      P:inflight:<worker>
KEYS[3] its queue list     P:jobs | P:queue:<name>
KEYS[4] its wake list      P:wake:<name>
KEYS[5] quarantine zset    P:quarantine
KEYS[6] quarantine reasons P:quarantine:why
KEYS[7] queue names set    P:queues

ARGV[1] id   ARGV[2] worker id   ARGV[3] lease token   ARGV[4] why (stored as last_error)
ARGV[5] queue name the caller built KEYS[3] from

Returns {0}        handed back;
        {-1}       lease lost (nothing written);
        {-3}       the record vanished; the id was dropped from the in-flight set;
        {-4}       the record's queue is not ARGV[5] (nothing written; read it and call again);
        {-92, why} the record cannot be read, or the queue has the wrong type: the job
                   was moved to quarantine;
        {-90, why} a key this call needs has the wrong type; {-91, why} NOPERM.

Writes: 0: 1 2 3 4 7 | -1: none | -3: 2 | -4: none | -92: 2 5 6 | -90: none | -91: none

The interrupted run still counts in `attempts` (runs started) but also in
`interrupted`, and fail.lua counts failures as attempts - interrupted: the
worker stopped it, the job did not fail, so no retry is consumed.
]]
--- @include "time"
--- @include "guard"
--- @include "job"
--- @include "quarantine"
--- @include "finish"
--- @include "push"
--- @include "queues"

local job, inflight, queue, wake, qzset, qwhy, queues =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local id, worker, lease = ARGV[1], ARGV[2], ARGV[3]
local why = bad_type(inflight, 'set')
if why then return {DATA_ERROR, why} end
local rec, bad, hold = hold_of(job, inflight, id, worker, lease, nil)
if hold == 'lost' then return {-1} end
if hold == 'ok' then
  if rec.state ~= 'processing' then return {-1} end
  if rec.queue ~= ARGV[5] then return {-4} end
  bad = bad_type(queue, 'list')
end
why = denied({{'SREM', inflight, id}, {'ZADD', qzset, '0', id}, {'HSET', qwhy, id, 'x'},
  {'HSET', job, 'state', 'x'}, {'LPUSH', queue, id}, {'RPUSH', wake, '1'},
  {'SADD', queues, 'x'}})
if why then return {NO_PERM, why} end
local now, nows = server_time()
local reply = unheld(hold, bad, rec, inflight, qzset, qwhy, id,
  'handed back (' .. ARGV[4] .. ')', 'release', now)
if reply then return reply end
redis.call('HSET', job, 'state', 'pending', 'updated_at', nows, 'last_error', ARGV[4],
  'interrupted', tonumber(rec.interrupted) + 1)
redis.call('SREM', inflight, id)
push_job(queue, wake, id, true, job, nows)
note_queue(queues, rec.queue)
return {0}
