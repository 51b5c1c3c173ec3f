--[[ purge: delete dead jobs, their records and their output.

KEYS[1] dead letter list  P:dead_letter
then for each id in ARGV, two keys:
KEYS[2i]   job hash  P:jobs:<id>
KEYS[2i+1] log key   P:log:<id>

ARGV[i] job ids (a batch read from the DLQ by the caller).

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
for i = 1, #ARGV do checks[#checks + 1] = {'DEL', KEYS[2 * i], KEYS[2 * i + 1]} end
why = denied(checks)
if why then return {NO_PERM, why} end
local deleted, dropped = 0, 0
for i = 1, #ARGV do
  local job = KEYS[2 * i]
  local t = key_type(job)
  local state = t == 'hash' and redis.call('HGET', job, 'state')
  if (state == 'dead' or (t ~= 'none' and t ~= 'hash')) and redis.call('LREM', dlq, 1, ARGV[i]) == 1 then
    redis.call('DEL', job, KEYS[2 * i + 1])
    deleted = deleted + 1
  elseif t == 'none' then
    dropped = dropped + redis.call('LREM', dlq, 0, ARGV[i])
  end
end
return {0, deleted, dropped}
