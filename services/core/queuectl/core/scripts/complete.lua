--[[ complete: record a successful run, if the caller still holds the job's lease.

KEYS[1] job hash        P:jobs:<id>
KEYS[2] in-flight set   P:inflight:<worker>
KEYS[3] completed zset  P:completed
KEYS[4] log key         P:log:<id>
KEYS[5] stats hash      P:stats
KEYS[6] config hash     P:config

ARGV[1] id   ARGV[2] worker id   ARGV[3] lease token
ARGV[4] last output chunk (already capped)   ARGV[5] bytes produced since the last shipment
ARGV[6] log cap in bytes   ARGV[7] default completed-ttl seconds ("0" = keep forever)

Returns 0 done (also when this very call is re-sent after a lost reply: the record
is already completed under this lease), -1 lease lost (the job is no longer processing under this token:
it was taken over or cancelled); nothing is written then.
]]
local f = redis.call('HMGET', KEYS[1], 'state', 'lease', 'worker', 'queue')
if f[2] ~= ARGV[3] or f[3] ~= ARGV[2] then
  return -1
end
if f[1] == 'completed' then
  return 0
end
if f[1] ~= 'processing' then
  return -1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nows = string.format('%.6f', now)

local cap = tonumber(ARGV[6])
if #ARGV[4] > 0 then
  local len = redis.call('APPEND', KEYS[4], ARGV[4])
  if len > cap then
    redis.call('SET', KEYS[4], redis.call('GETRANGE', KEYS[4], len - cap, -1))
  end
end
redis.call('HINCRBY', KEYS[1], 'log_size', tonumber(ARGV[5]))
redis.call('HSET', KEYS[1], 'state', 'completed', 'exit_code', 0, 'last_error', '',
  'finished_at', nows, 'updated_at', nows)
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[5], 'completed:' .. f[4], 1)
redis.call('ZADD', KEYS[3], now, ARGV[1])

local ttl = tonumber(redis.call('HGET', KEYS[6], 'completed-ttl') or ARGV[7])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], math.ceil(ttl))
  if redis.call('EXISTS', KEYS[4]) == 1 then
    redis.call('EXPIRE', KEYS[4], math.ceil(ttl))
  end
  -- The index forgets what the records' own TTL has already removed.
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - ttl)
end
return 0
