--[[ heartbeat: refresh a process's status hash and its entry in the registry zset.

KEYS[1] status hash     P:worker:<id> (or a scheduler's)
KEYS[2] registry zset   P:workers | P:schedulers

ARGV[1] id   ARGV[2] status TTL in milliseconds   ARGV[3..] field, value pairs

Returns the server time as a string (epoch seconds).

The hash expires on its own when beats stop; the zset entry stays, scored by
the last beat, so that recovery can still find a dead worker's in-flight set.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nows = string.format('%.6f', now)
local fields = {'last_beat', nows}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
redis.call('ZADD', KEYS[2], now, ARGV[1])
return nows
