--[[ quarantine_retry: put quarantined jobs back on their queues with a fresh start.

KEYS[1] quarantine zset     P:quarantine
KEYS[2] quarantine reasons  P:quarantine:why
KEYS[3] queue names set     P:queues
then for each id in ARGV (pairs), three keys:
KEYS[3i+1] job hash        P:jobs:<id>
KEYS[3i+2] its queue list  P:jobs | P:queue:<name>
KEYS[3i+3] its wake list   P:wake:<name>

ARGV[2i-1] job id, ARGV[2i] the queue name the caller built its keys from.

Returns {moved, notes}: how many jobs went back to pending (attempts, lost and
interrupted back to 0, as `dlq retry` does), and why each other id stayed (its
record still cannot be used, its queue key has the wrong type, it is not in
quarantine); or {-90, why} when a quarantine key has the wrong type; {-91, why} NOPERM.

Writes: * : 1 2 3 rest | -90: none | -91: none

The counters and the fields of the last run are reset, so a record that was set
aside for a garbage `attempts` comes back once the rest of it is sound.
]]
--- @include "time"
--- @include "guard"
--- @include "job"
--- @include "quarantine"
--- @include "push"
--- @include "queues"

local qzset, qwhy, queues = KEYS[1], KEYS[2], KEYS[3]
local why = quarantine_unusable(qzset, qwhy)
if why then return {DATA_ERROR, why} end
local checks = {{'ZREM', qzset, 'x'}, {'HDEL', qwhy, 'x'}, {'SADD', queues, 'x'}}
for i = 1, #ARGV / 2 do
  checks[#checks + 1] = {'HSET', KEYS[3 * i + 1], 'state', 'x'}
  checks[#checks + 1] = {'RPUSH', KEYS[3 * i + 2], 'x'}
  checks[#checks + 1] = {'RPUSH', KEYS[3 * i + 3], '1'}
end
why = denied(checks)
if why then return {NO_PERM, why} end
local now, nows = server_time()
local reset = {state = 'pending', attempts = '0', interrupted = '0', lost = '0',
  exit_code = '', last_error = '', finished_at = '', started_at = '', spawned_at = '',
  worker = '', run_at = '', updated_at = nows}
local moved, notes = 0, {}
for i = 1, #ARGV / 2 do
  local id, qname = ARGV[2 * i - 1], ARGV[2 * i]
  local job, queue, wake = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  local rec, bad = read_job(job, id, reset)
  if not redis.call('ZSCORE', qzset, id) then
    notes[#notes + 1] = id .. ': not in quarantine'
  elseif not rec then
    notes[#notes + 1] = id .. ': ' .. (bad or 'its record is gone')
  elseif rec.queue ~= qname then
    notes[#notes + 1] = id .. ': its record changed meanwhile; try again'
  else
    bad = bad_type(queue, 'list')
    if bad then
      notes[#notes + 1] = id .. ': ' .. bad
    else
      redis.call('ZREM', qzset, id)
      redis.call('HDEL', qwhy, id)
      local fields = {}
      for name, value in pairs(reset) do
        fields[#fields + 1] = name
        fields[#fields + 1] = value
      end
      redis.call('HSET', job, unpack(fields))
      push_job(queue, wake, id, false, job, nows)
      note_queue(queues, qname)
      moved = moved + 1
    end
  end
end
return {moved, notes}
