--[[ fail: record a failed run, then schedule a retry or bury the job in the DLQ,
if the caller still holds the job's lease.

KEYS[1] job hash            P:jobs:<id>
KEYS[2] in-flight set       P:inflight:<worker>
KEYS[3] retry zset          P:retry_queue
KEYS[4] dead letter list    P:dead_letter
KEYS[5] log key             P:log:<id>
KEYS[6] stats hash          P:stats
KEYS[7] scheduler wake list P:scheduler_wake
KEYS[8] quarantine zset     P:quarantine
KEYS[9] quarantine reasons  P:quarantine:why
KEYS[10] its failed index   P:idx:<queue>:failed
KEYS[11] its dead index     P:idx:<queue>:dead
KEYS[12] queue names set    P:queues

ARGV[1] id   ARGV[2] worker id   ARGV[3] lease token
ARGV[4] last output chunk (already capped)   ARGV[5] bytes produced since the last shipment
ARGV[6] log cap in bytes   ARGV[7] exit code ("" when the command never exited by itself)
ARGV[8] error text
ARGV[9..13] policy: max-retries, backoff-base, backoff-factor, backoff-max, and the
        longest delay ever used (seconds; caps backoff-max 0 and overflowing powers)
ARGV[14] the job's queue (as fetched; KEYS[10] and KEYS[11] are built from it)
ARGV[15] backoff-jitter policy (a fraction, "0" = none)   ARGV[16] a random number in [0, 1)

Returns {1, due}   retry scheduled at epoch `due` (state failed);
        {2}        dead (in the DLQ);
        {-1}       lease lost; nothing is written. A call re-sent after a lost reply
                   finds the record already failed or dead under its lease and
                   answers as the first call did;
        {-3}       the record vanished; the id was dropped from the in-flight set;
        {-92, why} the record cannot be read, or the retry zset / DLQ it must go to
                   has the wrong type: the job was moved to quarantine;
        {-90, why} a key this call needs has the wrong type; {-91, why} NOPERM.

Writes: 1: 1 2 3 5 6 7 10 12 | 2: 1 2 4 5 6 11 12 | -1: none | -3: 2 | -92: 2 8 9 | -90: none | -91: none

attempts already counts this run (fetch increments it). Runs that ended with
no result (worker lost, handed back at shutdown) are counted in `interrupted`
and consume no retry, so failures = attempts - interrupted; this failure makes
the next run retry number k = failures, which waits
backoff_base * backoff_factor ^ (k - 1) seconds, spread by +/- backoff-jitter of
itself when that is > 0 (so that jobs failing together do not retry in lockstep),
then capped by backoff-max when > 0 and always by ARGV[13].
]]
--- @include "time"
--- @include "guard"
--- @include "job"
--- @include "quarantine"
--- @include "tail"
--- @include "finish"
--- @include "stats"
--- @include "queues"

local job, inflight, retry, dlq, logkey, stats, swake, qzset, qwhy =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local failed_idx, dead_idx, queues = KEYS[10], KEYS[11], KEYS[12]
local id, worker, lease = ARGV[1], ARGV[2], ARGV[3]
local why = bad_type(inflight, 'set')
if why then return {DATA_ERROR, why} end
local rec, bad, hold = hold_of(job, inflight, id, worker, lease, ARGV[14])
if hold == 'lost' then return {-1} end
if hold == 'ok' then
  if rec.state == 'failed' then return {1, rec.run_at} end
  if rec.state == 'dead' then return {2} end
  if rec.state ~= 'processing' then return {-1} end
end

local retrying = false
if hold == 'ok' then
  local max_retries = tonumber(rec.max_retries ~= '' and rec.max_retries or ARGV[9])
  local failures = tonumber(rec.attempts) - tonumber(rec.interrupted)
  retrying = failures <= max_retries
  if retrying then
    bad = bad_type(retry, 'zset') or bad_type(failed_idx, 'zset')
  else
    bad = bad_type(dlq, 'list') or bad_type(dead_idx, 'zset')
  end
end
why = denied({{'SREM', inflight, id}, {'ZADD', qzset, '0', id}, {'HSET', qwhy, id, 'x'},
  {'HSET', job, 'state', 'x'}, {'ZADD', retry, '0', id}, {'RPUSH', dlq, id},
  {'RPUSH', swake, '1'}, {'APPEND', logkey, 'x'}, {'SET', logkey, 'x'},
  {'HINCRBY', stats, 'x', '1'}, {'ZADD', failed_idx, '0', id}, {'ZADD', dead_idx, '0', id},
  {'SADD', queues, 'x'}})
if why then return {NO_PERM, why} end
local now, nows = server_time()
local reply = unheld(hold, bad, rec, inflight, qzset, qwhy, id, 'failed (' .. ARGV[8] .. ')',
  'fail', now)
if reply then return reply end

if not bad_type(logkey, 'string') then append_tail(logkey, ARGV[4], tonumber(ARGV[6])) end
redis.call('HSET', job, 'exit_code', ARGV[7], 'last_error', ARGV[8],
  'finished_at', nows, 'updated_at', nows,
  'log_size', tonumber(rec.log_size) + tonumber(ARGV[5]))
redis.call('SREM', inflight, id)
bump(stats, 'failed:' .. rec.queue)
note_queue(queues, rec.queue)

if retrying then
  local failures = tonumber(rec.attempts) - tonumber(rec.interrupted)
  local longest = tonumber(ARGV[13])
  local cap = tonumber(ARGV[12])
  if cap <= 0 or cap > longest then cap = longest end
  -- factor ^ k overflows to inf for large k; min() turns that into the cap.
  local delay = math.min(tonumber(ARGV[10]) * tonumber(ARGV[11]) ^ (failures - 1), cap)
  local jitter = tonumber(ARGV[15])
  if jitter > 0 then
    delay = math.min(delay * (1 + jitter * (2 * tonumber(ARGV[16]) - 1)), cap)
  end
  local due = now + delay
  local dues = string.format('%.6f', due)
  redis.call('HSET', job, 'state', 'failed', 'run_at', dues)
  redis.call('ZADD', retry, due, id)
  redis.call('ZADD', failed_idx, due, id)
  -- Wake a sleeping scheduler only if this retry is now the earliest one due.
  local first = redis.call('ZRANGE', retry, 0, 0)
  if first[1] == id and key_type(swake) == 'none' then
    redis.call('RPUSH', swake, '1')
  end
  bump(stats, 'retried:' .. rec.queue)
  return {1, dues}
end

redis.call('HSET', job, 'state', 'dead', 'run_at', '')
redis.call('RPUSH', dlq, id)
redis.call('ZADD', dead_idx, now, id)
bump(stats, 'dead:' .. rec.queue)
return {2}
