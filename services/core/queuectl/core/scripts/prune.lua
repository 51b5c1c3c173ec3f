--[[ prune: delete ended jobs whose retention has passed, with their output and index entries.

KEYS[1] completed zset   P:completed
KEYS[2] cancelled zset   P:cancelled
KEYS[3] job hash prefix  P:jobs:   (job hash = prefix .. id)
KEYS[4] log key prefix   P:log:    (output tail = prefix .. id)
KEYS[5] index prefix     P:idx:    (per-queue index = prefix .. queue .. ':' .. state)

ARGV[1] completed-ttl policy in seconds ("0" = keep forever)
ARGV[2] how many entries of each set to handle at most

Returns {pruned}: jobs deleted (entries whose record was already gone are dropped
too and counted). A set of the wrong type, or a record that is not a hash, is left
alone (doctor reports it).

Writes: * : 1 2 jobs logs indexes

The scheduler runs this instead of the finish scripts setting a TTL: the record,
its output and both index entries go in one step, so an index never lists a job
whose record expired, and lowering completed-ttl takes effect at once.
]]
--- @include "time"
--- @include "guard"
--- @include "job"

local prefix, logs, indexes = KEYS[3], KEYS[4], KEYS[5]
local ttl, batch = tonumber(ARGV[1]), tonumber(ARGV[2])
if ttl <= 0 then return {0} end
local now = server_time()
local pruned = 0
for z, state in pairs({[KEYS[1]] = 'completed', [KEYS[2]] = 'cancelled'}) do
  if key_type(z) == 'zset' and not denied({{'ZREM', z, 'x'}, {'DEL', prefix .. 'x'}}) then
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', now - ttl, 'LIMIT', 0, batch)) do
      local job = prefix .. id
      local t = key_type(job)
      if t == 'none' then
        pruned = pruned + redis.call('ZREM', z, id)
      elseif t == 'hash' then
        local f = redis.call('HMGET', job, 'state', 'queue')
        redis.call('ZREM', z, id)
        if f[1] == state then
          local index = is_name(f[2] or '') and indexes .. f[2] .. ':' .. state
          if index and key_type(index) == 'zset' then redis.call('ZREM', index, id) end
          redis.call('DEL', job, logs .. id)
          pruned = pruned + 1
        end
      end
    end
  end
end
return {pruned}
