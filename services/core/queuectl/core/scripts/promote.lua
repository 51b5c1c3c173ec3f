--[[ promote: move due retries and due delayed jobs back onto their queues.

KEYS[1] retry zset          P:retry_queue
KEYS[2] delayed zset        P:delayed
KEYS[3] quarantine zset     P:quarantine
KEYS[4] quarantine reasons  P:quarantine:why
KEYS[5] queue names set     P:queues
then for each id in ARGV, five keys (see Store.job_queue_keys):
KEYS[5i+1] job hash           P:jobs:<id>
KEYS[5i+2] its queue list     P:jobs | P:queue:<name>
KEYS[5i+3] its wake list      P:wake:<name>
KEYS[5i+4] its failed index   P:idx:<name>:failed
KEYS[5i+5] its scheduled index P:idx:<name>:scheduled

ARGV[2i-1] job id, ARGV[2i] the queue name the caller built its keys from;
           at most a batch, as read by the caller (ZRANGE ... WITHSCORES).

Returns {promoted, next_due, now, notes, moved}: how many moved; the earliest score left
in either set ("" when both are empty or unusable); the server's time; what was set
aside on the way (ids moved to quarantine, a set of the wrong type skipped); and for
each job moved, five entries: id, queue, source ("retry" or "delayed"), due time, trace
context (for the scheduler's metrics and spans). A moved job's ready_at is its due time.
A scheduler sleeps until next_due. Or {-91, why} NOPERM, nothing written.

Writes: * : 1 2 3 4 5 rest | -91: none

The caller's read happens outside this script, so every id is re-checked
here: only a ZREM that returns 1 moves a job, which is why two schedulers
running at once never promote one item twice. A job whose record cannot be read,
or whose queue key has the wrong type, leaves the set for quarantine; an entry
whose record vanished or moved on is dropped.
]]
--- @include "time"
--- @include "guard"
--- @include "job"
--- @include "quarantine"
--- @include "push"
--- @include "queues"

local qzset, qwhy, queues = KEYS[3], KEYS[4], KEYS[5]
local now, nows = server_time()
local notes = {}
local sets = {}
for z = 1, 2 do
  local why = bad_type(KEYS[z], 'zset')
  if why then notes[#notes + 1] = 'skipped: ' .. why else sets[#sets + 1] = KEYS[z] end
end
local checks = {{'ZADD', qzset, '0', 'x'}, {'HSET', qwhy, 'x', 'x'}, {'SADD', queues, 'x'}}
for _, z in ipairs(sets) do checks[#checks + 1] = {'ZREM', z, 'x'} end
for i = 1, #ARGV / 2 do
  checks[#checks + 1] = {'HSET', KEYS[5 * i + 1], 'state', 'x'}
  checks[#checks + 1] = {'RPUSH', KEYS[5 * i + 2], 'x'}
  checks[#checks + 1] = {'RPUSH', KEYS[5 * i + 3], '1'}
  checks[#checks + 1] = {'ZREM', KEYS[5 * i + 4], 'x'}
  checks[#checks + 1] = {'ZREM', KEYS[5 * i + 5], 'x'}
end
local why = denied(checks)
if why then return {NO_PERM, why} end
local quarantine_why = quarantine_unusable(qzset, qwhy)

local moved = 0
local jobs = {}
-- Drop the id from its queue's failed and scheduled indexes (those of the wrong type
-- are left alone: doctor reports them).
local function unindex(id, failed_idx, scheduled_idx)
  for _, index in ipairs({failed_idx, scheduled_idx}) do
    if key_type(index) == 'zset' then redis.call('ZREM', index, id) end
  end
end

-- One due entry of set z: promote it, quarantine it, drop it, or leave it be.
local function settle(z, score, id, qname, job, queue, wake, failed_idx, scheduled_idx)
  local rec, bad
  if is_name(id) then rec, bad = read_job(job, id) else bad = 'invalid job id' end
  if rec and rec.queue ~= qname then
    return -- the id was replaced since the caller read it: the next round reads it again
  end
  if rec and (rec.state == 'failed' or rec.state == 'scheduled') then
    bad = bad_type(queue, 'list')
    if not bad then
      redis.call('ZREM', z, id)
      unindex(id, failed_idx, scheduled_idx)
      redis.call('HSET', job, 'state', 'pending', 'updated_at', nows)
      push_job(queue, wake, id, false, job, score)
      note_queue(queues, qname)
      moved = moved + 1
      for _, v in ipairs({id, qname, z == KEYS[1] and 'retry' or 'delayed', score,
          rec.trace_context}) do
        jobs[#jobs + 1] = v
      end
      return
    end
  end
  if not bad then
    redis.call('ZREM', z, id) -- its record vanished or moved on: a stale entry
    unindex(id, failed_idx, scheduled_idx)
  elseif quarantine_why then
    notes[#notes + 1] = 'left ' .. id .. ' in ' .. z .. ' (' .. bad .. '): cannot quarantine: '
      .. quarantine_why
  else
    redis.call('ZREM', z, id)
    unindex(id, failed_idx, scheduled_idx)
    quarantine(qzset, qwhy, id, bad, 'promote', rec and rec.state, now)
    notes[#notes + 1] = 'quarantined ' .. id .. ': ' .. bad
  end
end

for i = 1, #ARGV / 2 do
  for _, z in ipairs(sets) do
    local id = ARGV[2 * i - 1]
    local score = redis.call('ZSCORE', z, id)
    if score and tonumber(score) <= now then
      settle(z, score, id, ARGV[2 * i], KEYS[5 * i + 1], KEYS[5 * i + 2], KEYS[5 * i + 3],
        KEYS[5 * i + 4], KEYS[5 * i + 5])
    end
  end
end

local next_due = ''
for _, z in ipairs(sets) do
  local first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  if first[2] and (next_due == '' or tonumber(first[2]) < tonumber(next_due)) then
    next_due = first[2]
  end
end
return {moved, next_due, nows, notes, jobs}
