--[[ gauges_lease: take or renew the lease that makes one scheduler replica the exporter
of the cluster gauges (jobs per queue and state, oldest job age, retries due, workers).

KEYS[1] the lease   P:gauges_lease   (a string: the holder's id, with a TTL)

ARGV[1] the replica's id (scheduler id and instance token)   ARGV[2] lease in milliseconds

Returns {1}: ARGV[1] holds the lease now (taken, or renewed for ARGV[2] ms);
        {0}: another replica holds it; nothing is written;
        {-90, why} the key has the wrong type; {-91, why} NOPERM; nothing is written.

Writes: 1: 1 | 0: none | -90: none | -91: none

Only one replica exports those gauges at a time, so a sum() or max() over every
scheduler pod never counts a queue twice; when the holder dies, the lease expires
and another replica takes it within ARGV[2] ms.
]]
--- @include "guard"

local lease = KEYS[1]
local why = bad_type(lease, 'string')
if why then return {DATA_ERROR, why} end
why = denied({{'SET', lease, 'x'}})
if why then return {NO_PERM, why} end
local holder = redis.call('GET', lease)
if holder and holder ~= ARGV[1] then return {0} end
redis.call('SET', lease, ARGV[1], 'PX', ARGV[2])
return {1}
