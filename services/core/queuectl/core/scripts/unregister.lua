--[[ unregister: remove a stopping worker's status, unless it still holds jobs.

KEYS[1] status hash     P:worker:<id>
KEYS[2] registry zset   P:workers
KEYS[3] in-flight set   P:inflight:<id>
KEYS[4] control list    P:control:<id>
KEYS[5] wakeup list     P:wakeup:<id>

ARGV[1] worker id   ARGV[2] instance token (see heartbeat.lua)

Returns {0}           removed;
        {held}        the number of jobs still in flight (> 0): nothing is removed,
                      so that recovery can hand those jobs back;
        {-4}          another process holds this id now: nothing is removed;
        {-90, why}    a key has the wrong type; {-91, why} NOPERM.

Writes: 0: 1 2 3 4 5 | *: none | -4: none | -90: none | -91: none
]]
--- @include "guard"

local status, registry, inflight, control, wakeup = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local why = bad_type(status, 'hash') or bad_type(registry, 'zset') or bad_type(inflight, 'set')
if why then return {DATA_ERROR, why} end
local holder = redis.call('HGET', status, 'instance')
if holder and holder ~= ARGV[2] then return {-4} end
local held = redis.call('SCARD', inflight)
if held > 0 then return {held} end
why = denied({{'DEL', status, inflight, control, wakeup}, {'ZREM', registry, ARGV[1]}})
if why then return {NO_PERM, why} end
redis.call('DEL', status, inflight, control, wakeup)
redis.call('ZREM', registry, ARGV[1])
return {0}
