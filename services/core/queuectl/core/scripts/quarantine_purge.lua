--[[ quarantine_purge: delete quarantined jobs, their records and their output.

KEYS[1] quarantine zset     P:quarantine
KEYS[2] quarantine reasons  P:quarantine:why
then for each id in ARGV, two keys:
KEYS[2i+1] job hash  P:jobs:<id>
KEYS[2i+2] log key   P:log:<id>

ARGV[i] job ids.

Returns {deleted}: how many were in quarantine and are now gone (whatever their
record held); or {-90, why} when a quarantine key has the wrong type; {-91, why} NOPERM.

Writes: * : 1 2 rest | -90: none | -91: none
]]
--- @include "guard"
--- @include "quarantine"

local qzset, qwhy = KEYS[1], KEYS[2]
local why = quarantine_unusable(qzset, qwhy)
if why then return {DATA_ERROR, why} end
local checks = {{'ZREM', qzset, 'x'}, {'HDEL', qwhy, 'x'}}
for i = 1, #ARGV do checks[#checks + 1] = {'DEL', KEYS[2 * i + 1], KEYS[2 * i + 2]} end
why = denied(checks)
if why then return {NO_PERM, why} end
local deleted = 0
for i = 1, #ARGV do
  if redis.call('ZREM', qzset, ARGV[i]) == 1 then
    redis.call('HDEL', qwhy, ARGV[i])
    redis.call('DEL', KEYS[2 * i + 1], KEYS[2 * i + 2])
    deleted = deleted + 1
  end
end
return {deleted}
