--[[ cancel: end a job that has not ended yet, wherever it waits or runs.

KEYS[1] job hash        P:jobs:<id>
KEYS[2] its queue list  P:jobs | P:queue:<name>
KEYS[3] retry zset      P:retry_queue
KEYS[4] delayed zset    P:delayed
KEYS[5] in-flight set of the worker the caller saw holding it (any key if none)
KEYS[6] cancelled zset  P:cancelled
KEYS[7] config hash     P:config
KEYS[8] log key         P:log:<id>

ARGV[1] id   ARGV[2] worker the caller saw in the record ("" if none)
ARGV[3] default completed-ttl seconds (cancelled jobs are kept as long as completed ones)

Returns {0, previous state} cancelled; {-1} no such job; {-2, state} already ended;
        {-3} the job moved to another worker since the caller read it: read and call again.

A running job is fenced out by bumping its lease: the worker's next log
shipment or finish fails, and the worker stops the process group.
]]
local f = redis.call('HMGET', KEYS[1], 'state', 'worker')
local state = f[1]
if not state then return {-1} end
if state == 'completed' or state == 'dead' or state == 'cancelled' then
  return {-2, state}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nows = string.format('%.6f', now)

if state == 'pending' then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
elseif state == 'failed' then
  redis.call('ZREM', KEYS[3], ARGV[1])
elseif state == 'scheduled' then
  redis.call('ZREM', KEYS[4], ARGV[1])
elseif state == 'processing' then
  if (f[2] or '') ~= ARGV[2] then return {-3} end
  redis.call('SREM', KEYS[5], ARGV[1])
  redis.call('HINCRBY', KEYS[1], 'lease', 1)
end
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', nows, 'updated_at', nows,
  'last_error', 'cancelled', 'run_at', '')
redis.call('ZADD', KEYS[6], now, ARGV[1])
local ttl = tonumber(redis.call('HGET', KEYS[7], 'completed-ttl') or ARGV[3])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], math.ceil(ttl))
  -- The output of a run that was stopped (or failed before) goes with the record;
  -- left behind, a later job with this id would inherit it.
  if redis.call('EXISTS', KEYS[8]) == 1 then
    redis.call('EXPIRE', KEYS[8], math.ceil(ttl))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - ttl)
end
return {0, state}
