--[[ log_append: ship a chunk of a running job's output, if the caller holds the lease.

KEYS[1] job hash   P:jobs:<id>
KEYS[2] log key    P:log:<id>

ARGV[1] id   ARGV[2] worker id   ARGV[3] lease token
ARGV[4] output chunk (already capped)   ARGV[5] bytes produced since the last shipment
ARGV[6] log cap in bytes

Returns 0 stored, -1 lease lost (taken over or cancelled): the caller must stop the job.

The log key keeps the last `cap` bytes; the job's log_size counts every byte
produced, so a follower can tell how much it missed.
]]
local f = redis.call('HMGET', KEYS[1], 'state', 'lease', 'worker')
if f[1] ~= 'processing' or f[2] ~= ARGV[3] or f[3] ~= ARGV[2] then
  return -1
end
local cap = tonumber(ARGV[6])
if #ARGV[4] > 0 then
  local len = redis.call('APPEND', KEYS[2], ARGV[4])
  if len > cap then
    redis.call('SET', KEYS[2], redis.call('GETRANGE', KEYS[2], len - cap, -1))
  end
end
redis.call('HINCRBY', KEYS[1], 'log_size', tonumber(ARGV[5]))
return 0
