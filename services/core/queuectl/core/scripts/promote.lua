--[[ promote: move due retries and due delayed jobs back onto their queues.

KEYS[1] retry zset          P:retry_queue
KEYS[2] delayed zset        P:delayed
KEYS[3] quarantine zset     P:quarantine
KEYS[4] quarantine reasons  P:quarantine:why
then for each id in ARGV, three keys:
KEYS[3i+2] job hash          P:jobs:<id>
KEYS[3i+3] its queue list    P:jobs | P:queue:<name>
KEYS[3i+4] its wake list     P:wake:<name>

ARGV[2i-1] job id, ARGV[2i] the queue name the caller built its keys from;
           at most a batch, as read by the caller (ZRANGE ... WITHSCORES).

Returns {promoted, next_due, now, notes}: how many moved; the earliest score left
in either set ("" when both are empty or unusable); the server's time; what was set
aside on the way (ids moved to quarantine, a set of the wrong type skipped).
A scheduler sleeps until next_due. Or {-91, why} NOPERM, nothing written.

Writes: * : 1 2 3 4 rest | -91: none

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

local qzset, qwhy = KEYS[3], KEYS[4]
local now, nows = server_time()
local notes = {}
local sets = {}
for z = 1, 2 do
  local why = bad_type(KEYS[z], 'zset')
  if why then notes[#notes + 1] = 'skipped: ' .. why else sets[#sets + 1] = KEYS[z] end
end
local checks = {{'ZADD', qzset, '0', 'x'}, {'HSET', qwhy, 'x', 'x'}}
for _, z in ipairs(sets) do checks[#checks + 1] = {'ZREM', z, 'x'} end
for i = 1, #ARGV / 2 do
  local job, queue, wake = KEYS[3 * i + 2], KEYS[3 * i + 3], KEYS[3 * i + 4]
  checks[#checks + 1] = {'HSET', job, 'state', 'x'}
  checks[#checks + 1] = {'RPUSH', queue, 'x'}
  checks[#checks + 1] = {'RPUSH', wake, '1'}
end
local why = denied(checks)
if why then return {NO_PERM, why} end
local quarantine_why = quarantine_unusable(qzset, qwhy)

local moved = 0
-- One due entry of set z: promote it, quarantine it, drop it, or leave it be.
local function settle(z, id, qname, job, queue, wake)
  local rec, bad
  if is_name(id) then rec, bad = read_job(job, id) else bad = 'invalid job id' end
  if rec and rec.queue ~= qname then
    return -- the id was replaced since the caller read it: the next round reads it again
  end
  if rec and (rec.state == 'failed' or rec.state == 'scheduled') then
    bad = bad_type(queue, 'list')
    if not bad then
      redis.call('ZREM', z, id)
      redis.call('HSET', job, 'state', 'pending', 'updated_at', nows)
      push_job(queue, wake, id, false)
      moved = moved + 1
      return
    end
  end
  if not bad then
    redis.call('ZREM', z, id) -- its record vanished or moved on: a stale entry
  elseif quarantine_why then
    notes[#notes + 1] = 'left ' .. id .. ' in ' .. z .. ' (' .. bad .. '): cannot quarantine: '
      .. quarantine_why
  else
    redis.call('ZREM', z, id)
    quarantine(qzset, qwhy, id, bad, 'promote', rec and rec.state, now)
    notes[#notes + 1] = 'quarantined ' .. id .. ': ' .. bad
  end
end

for i = 1, #ARGV / 2 do
  for _, z in ipairs(sets) do
    local id = ARGV[2 * i - 1]
    local score = redis.call('ZSCORE', z, id)
    if score and tonumber(score) <= now then
      settle(z, id, ARGV[2 * i], KEYS[3 * i + 2], KEYS[3 * i + 3], KEYS[3 * i + 4])
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
return {moved, next_due, nows, notes}
