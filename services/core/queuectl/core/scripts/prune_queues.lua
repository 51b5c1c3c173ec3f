--[[ prune_queues: forget queue names that hold nothing.

KEYS[1] queue names set  P:queues
then for each name in ARGV, six keys:
KEYS[6i-4] its queue list   P:jobs | P:queue:<name>
KEYS[6i-3 .. 6i+1] its scheduled, failed, dead, completed and cancelled indexes

ARGV[i] queue names (a batch read from the set by the caller).

Returns {removed}: names dropped because none of their six keys exists. Every
script that puts a job into one of them adds the name again (lib/queues.lua), so
a queue whose only jobs are running reappears as soon as one of them ends.

Writes: * : 1
]]
--- @include "guard"

local queues = KEYS[1]
if key_type(queues) ~= 'set' or denied({{'SREM', queues, 'x'}}) then return {0} end
local removed = 0
for i = 1, #ARGV do
  local base = 6 * i - 4
  if redis.call('EXISTS', unpack(KEYS, base, base + 5)) == 0 then
    removed = removed + redis.call('SREM', queues, ARGV[i])
  end
end
return {removed}
