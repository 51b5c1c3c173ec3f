--[[ reap: hand the jobs of a dead worker back to the front of their queues.

KEYS[1] worker registry zset  P:workers
KEYS[2] its in-flight set     P:inflight:<worker>
KEYS[3] its status hash       P:worker:<worker>
KEYS[4] its control list      P:control:<worker>
KEYS[5] its wakeup list       P:wakeup:<worker>
KEYS[6] dead letter list      P:dead_letter
KEYS[7] stats hash            P:stats
KEYS[8] quarantine zset       P:quarantine
KEYS[9] quarantine reasons    P:quarantine:why
KEYS[10] queue names set      P:queues
then for each id in ARGV[4..] (pairs), four keys (see Store.job_queue_keys):
KEYS[11+4(i-1)] job hash        P:jobs:<id>
KEYS[12+4(i-1)] its queue list  P:jobs | P:queue:<name>
KEYS[13+4(i-1)] its wake list   P:wake:<name>
KEYS[14+4(i-1)] its dead index  P:idx:<name>:dead

ARGV[1] worker id   ARGV[2] worker TTL in seconds   ARGV[3] max-lost policy
ARGV[2+2i] job id, ARGV[3+2i] the queue name the caller built its keys from
           (ids read by the caller from the in-flight set)

Returns {requeued, buried, left, notes, moved}: jobs put back at the front of their
queue, jobs moved to the DLQ because they lost their worker max-lost times (a job that
kills its workers must not loop forever), ids still in the in-flight set, what was set
aside (ids moved to quarantine) or could not be checked, and for each job handed back
or buried, four entries: id, queue, "requeued" or "buried", trace context;
or {-1} when the worker is alive (it beat within the TTL), and nothing is changed;
or {-2, uptime} when Redis itself has been up less than the TTL (uptime in whole
seconds), so no beat is late yet, and nothing is changed;
or {-90, why} when the registry or the in-flight set has the wrong type;
or {-91, why} NOPERM.

Writes: * : 1 2 4 5 6 7 8 9 10 rest | -1: none | -2: none | -90: none | -91: none

A lost run does not consume a retry: `lost` and `interrupted` grow, `attempts`
(runs started) stays, and fail.lua counts failures as attempts - interrupted.
Only an SREM that returns 1 hands a job back, so two reapers never move one twice,
and a job that moved on (cancelled, finished, re-fetched) is left alone.
]]
--- @include "time"
--- @include "guard"
--- @include "job"
--- @include "quarantine"
--- @include "push"
--- @include "stats"
--- @include "queues"

local registry, inflight, status, control, wakeup, dlq, stats, qzset, qwhy, queues =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local worker = ARGV[1]
local why = bad_type(registry, 'zset') or bad_type(inflight, 'set')
if why then return {DATA_ERROR, why} end
local now, nows = server_time()
local beat = redis.call('ZSCORE', registry, worker)
if (beat and now - tonumber(beat) <= tonumber(ARGV[2])) or redis.call('EXISTS', status) == 1 then
  return {-1}
end
-- No beat lands while Redis is down, and a restart quicker than the clients' own retries
-- is never seen as an outage by the scheduler (which waits a TTL after one it sees): so
-- a worker is only late once this server has been up for a whole TTL. A user made with
-- an ACL line older than this check may not run INFO: it reaps without it, and is told.
local uptime_note
local info = redis.pcall('INFO', 'server')
if type(info) == 'table' and info['err'] then
  uptime_note = 'reaping without checking that Redis has been up a TTL: INFO refused ('
    .. info['err'] .. '); grant the line `queuectl acl scheduler` prints'
else
  local uptime = tonumber(string.match(info, 'uptime_in_seconds:(%d+)'))
  if uptime and uptime < tonumber(ARGV[2]) then return {-2, uptime} end
end
local checks = {{'SREM', inflight, 'x'}, {'ZREM', registry, worker}, {'DEL', control},
  {'DEL', wakeup}, {'RPUSH', dlq, 'x'}, {'ZADD', qzset, '0', 'x'}, {'HSET', qwhy, 'x', 'x'},
  {'HINCRBY', stats, 'x', '1'}, {'SADD', queues, 'x'}}
for i = 1, (#ARGV - 3) / 2 do
  local base = 11 + 4 * (i - 1)
  checks[#checks + 1] = {'HSET', KEYS[base], 'state', 'x'}
  checks[#checks + 1] = {'LPUSH', KEYS[base + 1], 'x'}
  checks[#checks + 1] = {'RPUSH', KEYS[base + 2], '1'}
  checks[#checks + 1] = {'ZADD', KEYS[base + 3], '0', 'x'}
end
why = denied(checks)
if why then return {NO_PERM, why} end
local quarantine_why = quarantine_unusable(qzset, qwhy)
local max_lost = tonumber(ARGV[3])
local requeued, buried, notes, moved = 0, 0, {uptime_note}, {}

-- One id of the dead worker's in-flight set, which the caller saw there.
local function hand_back(id, qname, job, queue, wake, dead_idx)
  if redis.call('SISMEMBER', inflight, id) == 0 then return end
  local rec, bad
  if is_name(id) then rec, bad = read_job(job, id) else bad = 'invalid job id' end
  if rec and rec.queue ~= qname then return end -- replaced since read: next round
  if not bad and not (rec and rec.state == 'processing' and rec.worker == worker) then
    redis.call('SREM', inflight, id) -- it moved on (cancelled, finished, re-fetched)
    return
  end
  local lost = rec and tonumber(rec.lost) + 1
  local burying = rec and lost >= max_lost
  if not bad then
    if burying then
      bad = bad_type(dlq, 'list') or bad_type(dead_idx, 'zset')
    else
      bad = bad_type(queue, 'list')
    end
  end
  if bad then
    if quarantine_why then
      notes[#notes + 1] = 'left ' .. id .. ' (' .. bad .. '): cannot quarantine: ' .. quarantine_why
      return
    end
    redis.call('SREM', inflight, id)
    quarantine(qzset, qwhy, id, 'worker ' .. worker .. ' lost, and ' .. bad, 'reap',
      rec and rec.state, now)
    notes[#notes + 1] = 'quarantined ' .. id .. ': ' .. bad
    return
  end
  redis.call('SREM', inflight, id)
  local why_lost = 'worker ' .. worker .. ' lost'
  redis.call('HSET', job, 'lost', lost, 'interrupted', tonumber(rec.interrupted) + 1,
    'updated_at', nows)
  if burying then
    redis.call('HSET', job, 'state', 'dead', 'finished_at', nows, 'exit_code', '',
      'last_error', why_lost .. ' (' .. lost .. ' runs lost their worker)')
    redis.call('RPUSH', dlq, id)
    redis.call('ZADD', dead_idx, now, id)
    bump(stats, 'dead:' .. rec.queue)
    buried = buried + 1
  else
    redis.call('HSET', job, 'state', 'pending', 'last_error', why_lost)
    push_job(queue, wake, id, true, job, nows)
    requeued = requeued + 1
  end
  for _, v in ipairs({id, rec.queue, burying and 'buried' or 'requeued', rec.trace_context}) do
    moved[#moved + 1] = v
  end
  bump(stats, 'lost:' .. rec.queue)
  note_queue(queues, rec.queue)
end

for i = 1, (#ARGV - 3) / 2 do
  local base = 11 + 4 * (i - 1)
  hand_back(ARGV[2 + 2 * i], ARGV[3 + 2 * i], KEYS[base], KEYS[base + 1], KEYS[base + 2],
    KEYS[base + 3])
end
local left = redis.call('SCARD', inflight)
if left == 0 then
  redis.call('ZREM', registry, worker)
  redis.call('DEL', control, wakeup)
end
return {requeued, buried, left, notes, moved}
