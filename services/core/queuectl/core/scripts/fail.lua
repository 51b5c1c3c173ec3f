--[[ fail: record a failed run, then schedule a retry or bury the job in the DLQ,
if the caller still holds the job's lease.

KEYS[1] job hash            P:jobs:<id>
KEYS[2] in-flight set       P:inflight:<worker>
KEYS[3] retry zset          P:retry_queue
KEYS[4] dead letter list    P:dead_letter
KEYS[5] config hash         P:config
KEYS[6] log key             P:log:<id>
KEYS[7] stats hash          P:stats
KEYS[8] scheduler wake list P:scheduler_wake

ARGV[1] id   ARGV[2] worker id   ARGV[3] lease token
ARGV[4] last output chunk (already capped)   ARGV[5] bytes produced since the last shipment
ARGV[6] log cap in bytes   ARGV[7] exit code ("" when the command never exited by itself)
ARGV[8] error text
ARGV[9..12] policy defaults: max-retries, backoff-base, backoff-factor, backoff-max

Returns {1, due} retry scheduled at epoch `due` (state failed), {2} dead (in the DLQ),
        {-1} lease lost; nothing is written then. A call re-sent after a lost reply
        finds the record already failed or dead under its lease and answers the same.

attempts already counts this run (fetch increments it). Runs that ended with
no result (worker lost, handed back at shutdown) are counted in `interrupted`
and consume no retry, so failures = attempts - interrupted; this failure makes
the next run retry number k = failures, which waits
backoff_base * backoff_factor ^ (k - 1) seconds, capped by backoff-max when > 0.
]]
local f = redis.call('HMGET', KEYS[1], 'state', 'lease', 'worker', 'queue', 'attempts',
  'max_retries', 'interrupted')
if f[2] ~= ARGV[3] or f[3] ~= ARGV[2] then
  return {-1}
end
if f[1] == 'failed' then
  return {1, redis.call('HGET', KEYS[1], 'run_at')}
elseif f[1] == 'dead' then
  return {2}
elseif f[1] ~= 'processing' then
  return {-1}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nows = string.format('%.6f', now)

local cap = tonumber(ARGV[6])
if #ARGV[4] > 0 then
  local len = redis.call('APPEND', KEYS[6], ARGV[4])
  if len > cap then
    redis.call('SET', KEYS[6], redis.call('GETRANGE', KEYS[6], len - cap, -1))
  end
end

local function policy(name, default)
  return tonumber(redis.call('HGET', KEYS[5], name) or default)
end
local max_retries = tonumber(f[6])
if not max_retries then max_retries = policy('max-retries', ARGV[9]) end
local failures = tonumber(f[5]) - (tonumber(f[7]) or 0)

redis.call('HINCRBY', KEYS[1], 'log_size', tonumber(ARGV[5]))
redis.call('HSET', KEYS[1], 'exit_code', ARGV[7], 'last_error', ARGV[8],
  'finished_at', nows, 'updated_at', nows)
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[7], 'failed:' .. f[4], 1)

if failures <= max_retries then
  local delay = policy('backoff-base', ARGV[10]) * policy('backoff-factor', ARGV[11]) ^ (failures - 1)
  local cap_delay = policy('backoff-max', ARGV[12])
  if cap_delay > 0 and delay > cap_delay then delay = cap_delay end
  local due = now + delay
  redis.call('HSET', KEYS[1], 'state', 'failed', 'run_at', string.format('%.6f', due))
  redis.call('ZADD', KEYS[3], due, ARGV[1])
  local first = redis.call('ZRANGE', KEYS[3], 0, 0)
  if first[1] == ARGV[1] and redis.call('LLEN', KEYS[8]) == 0 then
    redis.call('RPUSH', KEYS[8], '1')
  end
  redis.call('HINCRBY', KEYS[7], 'retried:' .. f[4], 1)
  return {1, string.format('%.6f', due)}
end

redis.call('HSET', KEYS[1], 'state', 'dead', 'run_at', '')
redis.call('RPUSH', KEYS[4], ARGV[1])
redis.call('HINCRBY', KEYS[7], 'dead:' .. f[4], 1)
return {2}
