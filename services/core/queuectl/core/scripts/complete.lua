--[[ complete: record a successful run, if the caller still holds the job's lease.

KEYS[1] job hash               P:jobs:<id>
KEYS[2] in-flight set          P:inflight:<worker>
KEYS[3] completed zset         P:completed
KEYS[4] log key                P:log:<id>
KEYS[5] stats hash             P:stats
KEYS[6] quarantine zset        P:quarantine
KEYS[7] quarantine reasons     P:quarantine:why
KEYS[8] its completed index    P:idx:<queue>:completed
KEYS[9] queue names set        P:queues

ARGV[1] id   ARGV[2] worker id   ARGV[3] lease token
ARGV[4] last output chunk (already capped)   ARGV[5] bytes produced since the last shipment
ARGV[6] log cap in bytes   ARGV[7] the job's queue (as fetched; KEYS[8] is built from it)

Returns {0}        done (also when this very call is re-sent after a lost reply: the
                   record is already completed under this lease);
        {-1}       lease lost: the job is no longer processing under this token (taken
                   over or cancelled); nothing is written;
        {-3}       the record vanished; the id was dropped from the in-flight set;
        {-92, why} the record cannot be read, or P:completed has the wrong type: the
                   job was moved from the in-flight set to quarantine;
        {-90, why} a key this call needs has the wrong type; {-91, why} NOPERM.

Writes: 0: 1 2 3 4 5 8 9 | -1: none | -3: 2 | -92: 2 6 7 | -90: none | -91: none

The output tail and the per-queue counters are best-effort: a log or stats key of
the wrong type is left alone (doctor reports it) and the job still completes. The
record is kept until the scheduler's prune.lua removes it, completed-ttl after it
ended, with its output and index entries.
]]
--- @include "time"
--- @include "guard"
--- @include "job"
--- @include "quarantine"
--- @include "tail"
--- @include "finish"
--- @include "stats"
--- @include "queues"

local job, inflight, completed, logkey, stats, qzset, qwhy, index, queues =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local id, worker, lease = ARGV[1], ARGV[2], ARGV[3]
local why = bad_type(inflight, 'set')
if why then return {DATA_ERROR, why} end
local rec, bad, hold = hold_of(job, inflight, id, worker, lease, ARGV[7])
if hold == 'lost' then return {-1} end
if hold == 'ok' and rec.state == 'completed' then return {0} end
if hold == 'ok' and rec.state ~= 'processing' then return {-1} end
if hold == 'ok' then bad = bad_type(completed, 'zset') or bad_type(index, 'zset') end
why = denied({{'SREM', inflight, id}, {'ZADD', qzset, '0', id}, {'HSET', qwhy, id, 'x'},
  {'HSET', job, 'state', 'x'}, {'ZADD', completed, '0', id}, {'APPEND', logkey, 'x'},
  {'SET', logkey, 'x'}, {'HINCRBY', stats, 'x', '1'}, {'ZADD', index, '0', id},
  {'SADD', queues, 'x'}})
if why then return {NO_PERM, why} end
local now, nows = server_time()
local reply = unheld(hold, bad, rec, inflight, qzset, qwhy, id, 'exited 0', 'complete', now)
if reply then return reply end

if not bad_type(logkey, 'string') then append_tail(logkey, ARGV[4], tonumber(ARGV[6])) end
redis.call('HSET', job, 'state', 'completed', 'exit_code', 0, 'last_error', '',
  'finished_at', nows, 'updated_at', nows,
  'log_size', tonumber(rec.log_size) + tonumber(ARGV[5]))
redis.call('SREM', inflight, id)
bump(stats, 'completed:' .. rec.queue)
redis.call('ZADD', completed, now, id)
redis.call('ZADD', index, now, id)
note_queue(queues, rec.queue)
return {0}
