--[[ purge: delete dead jobs, their records and their output.

KEYS[1] dead letter list  P:dead_letter
then for each id in ARGV, three keys:
KEYS[3i-1] job hash        P:jobs:<id>
KEYS[3i]   log key         P:log:<id>
KEYS[3i+1] its dead index  P:idx:<queue>:dead

ARGV[2i-1] job id (a batch read from the DLQ by the caller), ARGV[2i] the queue name
           the caller built its index key from.

Returns {0, deleted, dropped}: jobs deleted with their output, and DLQ entries dropped
because their record is gone (deleted by hand, or expired); or {-90, why} when the
DLQ has the wrong type; {-91, why} NOPERM.

Writes: 0: 1 rest | -90: none | -91: none

A dead job is deleted even when its record no longer parses: purging is how an
operator gets rid of it. A job retried between the caller's read and this script
is no longer dead and is left alone (doctor reports an entry left behind).
]]
--- @include "guard"

local dlq = KEYS[1]
local why = bad_type(dlq, 'list')
if why then return {DATA_ERROR, why} end
local checks = {{'LREM', dlq, '0', 'x'}}
for i = 1, #ARGV / 2 do
  checks[#checks + 1] = {'DEL', KEYS[3 * i - 1], KEYS[3 * i]}
  checks[#checks + 1] = {'ZREM', KEYS[3 * i + 1], 'x'}
end
why = denied(checks)
if why then return {NO_PERM, why} end
local deleted, dropped = 0, 0
for i = 1, #ARGV / 2 do
  local id, job, index = ARGV[2 * i - 1], KEYS[3 * i - 1], KEYS[3 * i + 1]
  local t = key_type(job)
  local state = t == 'hash' and redis.call('HGET', job, 'state')
  local gone = false
  if (state == 'dead' or (t ~= 'none' and t ~= 'hash')) and redis.call('LREM', dlq, 1, id) == 1 then
    redis.call('DEL', job, KEYS[3 * i])
    deleted = deleted + 1
    gone = true
  elseif t == 'none' then
    dropped = dropped + redis.call('LREM', dlq, 0, id)
    gone = true
  end
  if gone and key_type(index) == 'zset' then redis.call('ZREM', index, id) end
end
return {0, deleted, dropped}
