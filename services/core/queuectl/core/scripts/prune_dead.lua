--[[ prune_dead: delete the oldest dead jobs past their retention, with their output and
index entries.

KEYS[1] dead letter list  P:dead_letter
KEYS[2] job hash prefix   P:jobs:   (job hash = prefix .. id)
KEYS[3] log key prefix    P:log:    (output tail = prefix .. id)
KEYS[4] index prefix      P:idx:    (per-queue index = prefix .. queue .. ':dead')

ARGV[1] dead-ttl policy in seconds ("0" = no age limit)
ARGV[2] dead-max policy: dead jobs kept at most ("0" = no count limit)
ARGV[3] how many DLQ entries to handle at most

Returns {pruned, dropped}: dead jobs deleted (older than dead-ttl, or the oldest beyond
dead-max), and DLQ entries dropped because their record is gone or no longer dead.
A DLQ of the wrong type is left alone (doctor reports it), and so is an entry at its
head whose record is not a hash or has no usable time, unless the DLQ is over dead-max
(then it is deleted as `dlq purge` deletes it).

Writes: * : 1 jobs logs indexes

Both scripts that bury a job (fail.lua, reap.lua) RPUSH it as they set updated_at, so
the DLQ runs from the oldest death at its head: the script stops at the first entry
that is young enough and within the count. A job retried from the DLQ left it
(dlq_retry.lua), so a later death counts from its new time.
]]
--- @include "time"
--- @include "guard"
--- @include "job"

local dlq, prefix, logs, indexes = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ttl, cap, batch = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if (ttl <= 0 and cap <= 0) or key_type(dlq) ~= 'list' then return {0, 0} end
if denied({{'LPOP', dlq}, {'DEL', prefix .. 'x', logs .. 'x'}, {'ZREM', indexes .. 'x', 'x'}})
    then return {0, 0} end
local now = server_time()
local left = redis.call('LLEN', dlq)
local pruned, dropped = 0, 0
for _ = 1, batch do
  local id = redis.call('LINDEX', dlq, 0)
  if not id then break end
  local over = cap > 0 and left > cap
  local job = prefix .. id
  local t = key_type(job)
  local f = t == 'hash' and redis.call('HMGET', job, 'state', 'queue', 'updated_at') or {}
  if t == 'none' or (t == 'hash' and f[1] ~= 'dead') then
    -- A stale entry: the record is gone, or the job left the DLQ without its entry.
    redis.call('LPOP', dlq)
    dropped = dropped + 1
  else
    local at = f[3] and is_decimal(f[3]) and tonumber(f[3])
    local expired = ttl > 0 and at and at <= now - ttl
    if not (over or expired) then break end
    redis.call('LPOP', dlq)
    if f[2] and is_name(f[2]) then
      local index = indexes .. f[2] .. ':dead'
      if key_type(index) == 'zset' then redis.call('ZREM', index, id) end
    end
    redis.call('DEL', job, logs .. id)
    pruned = pruned + 1
  end
  left = left - 1
end
return {pruned, dropped}
