--[[ release: hand a held job back to the front of its queue (worker shutting down).

KEYS[1] job hash        P:jobs:<id>
KEYS[2] in-flight set   P:inflight:<worker>
KEYS[3] its queue list  P:jobs | P:queue:<name>
KEYS[4] its wake list   P:wake:<name>

ARGV[1] id   ARGV[2] worker id   ARGV[3] lease token

Returns 0 handed back, -1 lease lost (nothing written).

The interrupted run still counts in `attempts` (runs started) but also in
`interrupted`, and fail.lua counts failures as attempts - interrupted: the
worker stopped it, the job did not fail, so no retry is consumed.
]]
local f = redis.call('HMGET', KEYS[1], 'state', 'lease', 'worker')
if f[1] ~= 'processing' or f[2] ~= ARGV[3] or f[3] ~= ARGV[2] then
  return -1
end
local t = redis.call('TIME')
local nows = string.format('%.6f', tonumber(t[1]) + tonumber(t[2]) / 1000000)
redis.call('HINCRBY', KEYS[1], 'interrupted', 1)
redis.call('HSET', KEYS[1], 'state', 'pending', 'updated_at', nows,
  'last_error', 'interrupted by worker shutdown')
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('LPUSH', KEYS[3], ARGV[1])
if redis.call('LLEN', KEYS[4]) == 0 then
  redis.call('RPUSH', KEYS[4], '1')
end
return 0
