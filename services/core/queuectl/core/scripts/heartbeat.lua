--[[ heartbeat: claim or refresh a process's status hash and its entry in the registry.

KEYS[1] status hash     P:worker:<id> (or P:scheduler:<id>)
KEYS[2] registry zset   P:workers | P:schedulers

ARGV[1] id   ARGV[2] status TTL in milliseconds
ARGV[3] instance token: random per process, so two processes given one id can tell
        each other apart
ARGV[4..] field, value pairs

Returns {0, now}         beat recorded; now is the server time (epoch seconds, a string);
        {-4, host, pid}  a live process (its status hash has not expired) holds this
                         id under another token: nothing is written;
        {-90, why}       a key has the wrong type; {-91, why} NOPERM.

Writes: 0: 1 2 | -4: none | -90: none | -91: none

The hash expires on its own when beats stop; the zset entry stays, scored by
the last beat, so that recovery can still find a dead worker's in-flight set.
]]
--- @include "time"
--- @include "guard"

local status, registry = KEYS[1], KEYS[2]
local why = bad_type(status, 'hash') or bad_type(registry, 'zset')
if why then return {DATA_ERROR, why} end
local holder = redis.call('HMGET', status, 'instance', 'host', 'pid')
if holder[1] and holder[1] ~= ARGV[3] then
  return {-4, holder[2] or '', holder[3] or ''}
end
why = denied({{'HSET', status, 'x', 'x'}, {'PEXPIRE', status, '1'}, {'ZADD', registry, '0', 'x'}})
if why then return {NO_PERM, why} end
local now, nows = server_time()
local fields = {'last_beat', nows, 'instance', ARGV[3]}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', status, unpack(fields))
redis.call('PEXPIRE', status, tonumber(ARGV[2]))
redis.call('ZADD', registry, now, ARGV[1])
return {0, nows}
