--[[ prune: forget index entries whose job record has expired.

KEYS[1] completed zset   P:completed
KEYS[2] cancelled zset   P:cancelled
KEYS[3] job hash prefix  P:jobs:   (job hash = prefix .. id)

ARGV[1] how many of the oldest entries of each index to look at

Returns {pruned}: entries removed. An index of the wrong type is left alone
(doctor reports it).

Writes: * : 1 2

Ended records expire by themselves (completed-ttl); their index entries go here,
run by the scheduler, so that the finish scripts do not trim on every job and an
entry never disappears while its record is still there (as a time-based trim
would after completed-ttl is lowered).
]]
--- @include "guard"

local pruned = 0
for z = 1, 2 do
  if key_type(KEYS[z]) == 'zset' and not denied({{'ZREM', KEYS[z], 'x'}}) then
    for _, id in ipairs(redis.call('ZRANGE', KEYS[z], 0, tonumber(ARGV[1]) - 1)) do
      if redis.call('EXISTS', KEYS[3] .. id) == 0 then
        pruned = pruned + redis.call('ZREM', KEYS[z], id)
      end
    end
  end
end
return {pruned}
