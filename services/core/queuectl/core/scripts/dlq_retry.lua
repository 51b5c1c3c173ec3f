--[[ dlq_retry: give dead jobs a fresh set of retries and put them back on their queues.

KEYS[1] dead letter list    P:dead_letter
KEYS[2] quarantine zset     P:quarantine
KEYS[3] quarantine reasons  P:quarantine:why
KEYS[4] queue names set     P:queues
then for each id in ARGV (pairs), four keys (see Store.job_queue_keys):
KEYS[4i+1] job hash        P:jobs:<id>
KEYS[4i+2] its queue list  P:jobs | P:queue:<name>
KEYS[4i+3] its wake list   P:wake:<name>
KEYS[4i+4] its dead index  P:idx:<name>:dead

ARGV[2i-1] job id, ARGV[2i] the queue name the caller built its keys from.

Returns {moved, notes}: how many jobs moved, and what was set aside (ids moved to
quarantine because their record cannot be read or their queue key has the wrong
type); or {-90, why} when the DLQ has the wrong type; {-91, why} NOPERM.

Writes: * : 1 2 3 4 rest | -90: none | -91: none

An id is moved only if LREM removed it from the DLQ here, so concurrent retries
of one id move it once.
]]
--- @include "time"
--- @include "guard"
--- @include "job"
--- @include "quarantine"
--- @include "push"
--- @include "queues"

local dlq, qzset, qwhy, queues = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local why = bad_type(dlq, 'list')
if why then return {DATA_ERROR, why} end
local checks = {{'LREM', dlq, '1', 'x'}, {'ZADD', qzset, '0', 'x'}, {'HSET', qwhy, 'x', 'x'},
  {'SADD', queues, 'x'}}
for i = 1, #ARGV / 2 do
  checks[#checks + 1] = {'HSET', KEYS[4 * i + 1], 'state', 'x'}
  checks[#checks + 1] = {'RPUSH', KEYS[4 * i + 2], 'x'}
  checks[#checks + 1] = {'RPUSH', KEYS[4 * i + 3], '1'}
  checks[#checks + 1] = {'ZREM', KEYS[4 * i + 4], 'x'}
end
why = denied(checks)
if why then return {NO_PERM, why} end
local now, nows = server_time()
local quarantine_why = quarantine_unusable(qzset, qwhy)
local moved, notes = 0, {}

for i = 1, #ARGV / 2 do
  local id, qname = ARGV[2 * i - 1], ARGV[2 * i]
  local job, queue, wake, dead_idx = KEYS[4 * i + 1], KEYS[4 * i + 2], KEYS[4 * i + 3],
    KEYS[4 * i + 4]
  local rec, bad
  if is_name(id) then rec, bad = read_job(job, id) else bad = 'invalid job id' end
  if rec and rec.state == 'dead' and rec.queue == qname then
    bad = bad_type(queue, 'list')
    if not bad and redis.call('LREM', dlq, 1, id) == 1 then
      redis.call('HSET', job, 'state', 'pending', 'attempts', 0, 'interrupted', 0, 'lost', 0,
        'updated_at', nows, 'exit_code', '', 'last_error', '', 'finished_at', '',
        'started_at', '', 'spawned_at', '', 'worker', '', 'run_at', '')
      if key_type(dead_idx) == 'zset' then redis.call('ZREM', dead_idx, id) end
      push_job(queue, wake, id, false, job, nows)
      note_queue(queues, qname)
      moved = moved + 1
    end
  end
  if bad and quarantine_why then
    notes[#notes + 1] = 'left ' .. id .. ' in the DLQ (' .. bad .. '): cannot quarantine: '
      .. quarantine_why
  elseif bad and redis.call('LREM', dlq, 1, id) == 1 then
    if key_type(dead_idx) == 'zset' then redis.call('ZREM', dead_idx, id) end
    quarantine(qzset, qwhy, id, bad, 'dlq_retry', rec and rec.state, now)
    notes[#notes + 1] = 'quarantined ' .. id .. ': ' .. bad
  end
end
return {moved, notes}
