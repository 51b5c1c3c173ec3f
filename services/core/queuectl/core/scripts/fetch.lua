--[[ fetch: take the first pending job of the first non-empty queue, in priority order,
and lease it to a worker in the same step.

KEYS[1]          the worker's in-flight set   P:inflight:<worker>
KEYS[2]          config hash                  P:config
KEYS[3]          job hash prefix              P:jobs:   (job hash = prefix .. id)
KEYS[4 .. 3+n]   queue lists, highest priority first
KEYS[4+n .. 3+2n] their wake lists, same order

ARGV[1] worker id   ARGV[2] n (number of queues)   ARGV[3] default job timeout (seconds)

Returns {} when every queue is empty, else
        {id, lease, command, timeout, attempts, queue, trace_context}
        where timeout is the job's own, else config job-timeout, else ARGV[3] ("0" = none).

The id moves from the queue into the in-flight set inside this script, so a
worker that dies at any point after it leaves a recoverable trace: the job is
never held only in a worker's memory. The lease counter grows on every fetch;
finish scripts compare it, which fences out a worker whose job was taken over.
The job hash key is built from KEYS[3]; with a hash-tagged prefix it shares
the slot of every other key, which keeps the script Redis Cluster safe.
]]
local n = tonumber(ARGV[2])
local t = redis.call('TIME')
local nows = string.format('%.6f', tonumber(t[1]) + tonumber(t[2]) / 1000000)

for i = 1, n do
  -- Bounded loop: an id whose record vanished (purged, expired) is dropped, not run.
  for _ = 1, 100 do
    local id = redis.call('LPOP', KEYS[3 + i])
    if not id then break end
    local job = KEYS[3] .. id
    local state = redis.call('HGET', job, 'state')
    if state == 'pending' then
      local lease = redis.call('HINCRBY', job, 'lease', 1)
      local attempts = redis.call('HINCRBY', job, 'attempts', 1)
      redis.call('HSET', job, 'state', 'processing', 'worker', ARGV[1],
        'started_at', nows, 'updated_at', nows)
      redis.call('SADD', KEYS[1], id)
      -- One marker wakes one idle worker; re-arm so the others see remaining work.
      for j = 1, n do
        if redis.call('LLEN', KEYS[3 + j]) > 0 and redis.call('LLEN', KEYS[3 + n + j]) == 0 then
          redis.call('RPUSH', KEYS[3 + n + j], '1')
        end
      end
      local f = redis.call('HMGET', job, 'command', 'timeout', 'queue', 'trace_context')
      local timeout = f[2]
      if not timeout or timeout == '' then
        timeout = redis.call('HGET', KEYS[2], 'job-timeout') or ARGV[3]
      end
      return {id, lease, f[1], timeout, attempts, f[3], f[4] or ''}
    end
  end
end
return {}
