--[[ unregister: remove a stopping worker's status, unless it still holds jobs.

KEYS[1] status hash     P:worker:<id>
KEYS[2] registry zset   P:workers
KEYS[3] in-flight set   P:inflight:<id>
KEYS[4] control list    P:control:<id>
KEYS[5] wakeup list     P:wakeup:<id>

ARGV[1] worker id

Returns 0 removed, or the number of jobs still in flight (then nothing is
removed, so that recovery can hand those jobs back).
]]
local held = redis.call('SCARD', KEYS[3])
if held > 0 then return held end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4], KEYS[5])
redis.call('ZREM', KEYS[2], ARGV[1])
return 0
