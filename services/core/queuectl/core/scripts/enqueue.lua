--[[ enqueue: create a job record and put it on its queue, or in the delayed set.

KEYS[1]  job hash            P:jobs:<id>
KEYS[2]  queue list          P:jobs | P:queue:<name>
KEYS[3]  queue wake list     P:wake:<name>
KEYS[4]  delayed zset        P:delayed
KEYS[5]  queue names set     P:queues
KEYS[6]  dead letter list    P:dead_letter
KEYS[7]  completed zset      P:completed
KEYS[8]  cancelled zset      P:cancelled
KEYS[9]  log key             P:log:<id>
KEYS[10] scheduler wake list P:scheduler_wake
KEYS[11] quarantine zset     P:quarantine
KEYS[12] quarantine reasons  P:quarantine:why
KEYS[13] its scheduled index P:idx:<queue>:scheduled
KEYS[14..16] the dead, completed and cancelled indexes of the queue ARGV[11] names
         (the queue of the ended job a replace removes)

ARGV[1] id   ARGV[2] queue name   ARGV[3] command
ARGV[4] max_retries ("" = policy default)   ARGV[5] timeout seconds ("" = policy default)
ARGV[6] run_at epoch seconds ("" = now)     ARGV[7] "1" to replace an ended job
ARGV[8] trace context ("" = none)
ARGV[9] request token: random per call, the same when a call is re-sent
ARGV[10] env: JSON object of the job's own variables ("" = none)
ARGV[11] the queue the caller read from an existing record (for a replace; "" = none)
ARGV[12] delay in seconds from now by Redis's clock ("" = none; used when ARGV[6] is "")

Returns {0, created_at, run_at}  queued as pending;   {1, created_at, run_at} stored as
                    scheduled (the record's created_at and run_at, "" for none, so the
                    caller needs no read-back);
        {-1, state} the id exists and has not ended;
        {-2, state} the id exists, has ended (or is in quarantine), and ARGV[7] is not "1";
        {-4}        a replace found the old record in another queue than ARGV[11] (it
                    changed since the caller read it): nothing written, read and call again;
        {-90, why}  a key this job needs has the wrong type, or the existing record
                    cannot be read; {-91, why} NOPERM. Nothing is written then.

Writes: 0: 1 2 3 5 6 7 8 9 11 12 14 15 16 | 1: 1 4 5 6 7 8 9 10 11 12 13 14 15 16 | -1: none | -2: none | -4: none | -90: none | -91: none

A call re-sent after its reply was lost (redis-py retries on a dropped
connection) finds its own token on the record and answers as the first run
did, instead of refusing the job it just stored. The queue names set is an index:
when it has the wrong type the job is still stored, and doctor reports the key.
]]
--- @include "time"
--- @include "guard"
--- @include "job"
--- @include "push"
--- @include "queues"

local job, queue, wake, delayed, queues, dlq, completed, cancelled, logkey, swake, qzset, qwhy =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10],
  KEYS[11], KEYS[12]
local scheduled_idx, old_dead, old_completed, old_cancelled = KEYS[13], KEYS[14], KEYS[15],
  KEYS[16]
local id = ARGV[1]
local now, nows = server_time()
local run_at, run_at_s, later = due_time(now, ARGV[6], ARGV[12])

local why = bad_type(later and delayed or queue, later and 'zset' or 'list')
  or (later and bad_type(scheduled_idx, 'zset')) or bad_type(qzset, 'zset') or bad_type(qwhy, 'hash')
if why then return {DATA_ERROR, why} end
local rec, bad = read_job(job, id)
if rec and ARGV[9] ~= '' and redis.call('HGET', job, 'enqueue_token') == ARGV[9] then
  return {rec.state == 'scheduled' and 1 or 0, rec.created_at, rec.run_at}
end
local quarantined = redis.call('ZSCORE', qzset, id)
if bad and not quarantined then
  return {DATA_ERROR, 'job ' .. id .. ' exists but its record cannot be read: ' .. bad}
end
if quarantined then
  if ARGV[7] ~= '1' then return {-2, 'quarantined'} end
elseif rec then
  if rec.state ~= 'completed' and rec.state ~= 'dead' and rec.state ~= 'cancelled' then
    return {-1, rec.state}
  end
  if ARGV[7] ~= '1' then return {-2, rec.state} end
  if rec.queue ~= ARGV[11] then return {-4} end
  why = bad_type(dlq, 'list') or bad_type(completed, 'zset') or bad_type(cancelled, 'zset')
    or bad_type(old_dead, 'zset') or bad_type(old_completed, 'zset')
    or bad_type(old_cancelled, 'zset')
  if why then return {DATA_ERROR, why} end
end
-- The writes this call makes, and only those: a new job's are four commands.
why = denied_one('HSET', job, 'state', 'x') or denied_one('SADD', queues, 'x')
if not why and later then
  why = denied({{'ZADD', delayed, '0', id}, {'ZADD', scheduled_idx, '0', id},
    {'RPUSH', swake, '1'}})
elseif not why then
  why = denied_one('RPUSH', queue, id) or denied_one('RPUSH', wake, '1')
end
if not why and quarantined then
  why = denied({{'ZREM', qzset, id}, {'HDEL', qwhy, id}, {'DEL', job}, {'DEL', logkey}})
elseif not why and rec then
  why = denied({{'DEL', job}, {'DEL', logkey}, {'LREM', dlq, '0', id},
    {'ZREM', completed, id}, {'ZREM', cancelled, id}, {'ZREM', old_dead, id},
    {'ZREM', old_completed, id}, {'ZREM', old_cancelled, id}})
end
if why then return {NO_PERM, why} end

if quarantined then
  redis.call('ZREM', qzset, id)
  redis.call('HDEL', qwhy, id)
  redis.call('DEL', job, logkey)
elseif rec then
  redis.call('LREM', dlq, 0, id)
  redis.call('ZREM', completed, id)
  redis.call('ZREM', cancelled, id)
  redis.call('ZREM', old_dead, id)
  redis.call('ZREM', old_completed, id)
  redis.call('ZREM', old_cancelled, id)
  redis.call('DEL', job, logkey)
end

redis.call('HSET', job,
  'id', id, 'command', ARGV[3], 'queue', ARGV[2],
  'state', later and 'scheduled' or 'pending', 'attempts', 0,
  'max_retries', ARGV[4], 'timeout', ARGV[5], 'run_at', run_at_s,
  'created_at', nows, 'updated_at', nows, 'lease', 0, 'log_size', 0,
  'trace_context', ARGV[8], 'enqueue_token', ARGV[9], 'env', ARGV[10])
note_queue(queues, ARGV[2])

if later then
  redis.call('ZADD', delayed, run_at, id)
  redis.call('ZADD', scheduled_idx, run_at, id)
  -- Wake a sleeping scheduler only if this job is now the earliest one due.
  local first = redis.call('ZRANGE', delayed, 0, 0)
  if first[1] == id and key_type(swake) == 'none' then
    redis.call('RPUSH', swake, '1')
  end
  return {1, nows, run_at_s}
end
push_job(queue, wake, id, false, job, nows)
return {0, nows, run_at_s}
