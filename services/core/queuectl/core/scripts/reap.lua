--[[ reap: hand the jobs of a dead worker back to the front of their queues.

KEYS[1] worker registry zset  P:workers
KEYS[2] its in-flight set     P:inflight:<worker>
KEYS[3] its status hash       P:worker:<worker>
KEYS[4] its control list      P:control:<worker>
KEYS[5] its wakeup list       P:wakeup:<worker>
KEYS[6] dead letter list      P:dead_letter
KEYS[7] config hash           P:config
KEYS[8] stats hash            P:stats
then for each id in ARGV[4..], three keys:
KEYS[9+3(i-1)]  job hash        P:jobs:<id>
KEYS[10+3(i-1)] its queue list  P:jobs | P:queue:<name>
KEYS[11+3(i-1)] its wake list   P:wake:<name>

ARGV[1] worker id   ARGV[2] worker TTL in seconds   ARGV[3] default max-lost
ARGV[4..] job ids read by the caller from the in-flight set

Returns {requeued, buried, left}: jobs put back at the front of their queue, jobs
moved to the DLQ because they lost their worker max-lost times (a job that kills
its workers must not loop forever), ids still in the in-flight set; or {-1} when
the worker is alive (it beat within the TTL), and nothing is changed.

A lost run does not consume a retry: `lost` and `interrupted` grow, `attempts`
(runs started) stays, and fail.lua counts failures as attempts - interrupted.
Only an SREM that returns 1 hands a job back, so two reapers never move one twice,
and a job that moved on (cancelled, finished, re-fetched) is left alone.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nows = string.format('%.6f', now)
local beat = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (beat and now - tonumber(beat) <= tonumber(ARGV[2])) or redis.call('EXISTS', KEYS[3]) == 1 then
  return {-1}
end
local max_lost = tonumber(redis.call('HGET', KEYS[7], 'max-lost') or ARGV[3])
local requeued, buried = 0, 0
for i = 4, #ARGV do
  local id = ARGV[i]
  local base = 9 + 3 * (i - 4)
  local job, queue, wake = KEYS[base], KEYS[base + 1], KEYS[base + 2]
  if redis.call('SREM', KEYS[2], id) == 1 then
    local f = redis.call('HMGET', job, 'state', 'worker', 'queue')
    if f[1] == 'processing' and f[2] == ARGV[1] then
      local lost = redis.call('HINCRBY', job, 'lost', 1)
      redis.call('HINCRBY', job, 'interrupted', 1)
      local why = 'worker ' .. ARGV[1] .. ' lost'
      if lost >= max_lost then
        redis.call('HSET', job, 'state', 'dead', 'updated_at', nows, 'finished_at', nows,
          'last_error', why .. ' (' .. lost .. ' runs lost their worker)', 'exit_code', '')
        redis.call('RPUSH', KEYS[6], id)
        redis.call('HINCRBY', KEYS[8], 'dead:' .. f[3], 1)
        buried = buried + 1
      else
        redis.call('HSET', job, 'state', 'pending', 'updated_at', nows, 'last_error', why)
        redis.call('LPUSH', queue, id)
        if redis.call('LLEN', wake) == 0 then
          redis.call('RPUSH', wake, '1')
        end
        requeued = requeued + 1
      end
      redis.call('HINCRBY', KEYS[8], 'lost:' .. f[3], 1)
    end
  end
end
local left = redis.call('SCARD', KEYS[2])
if left == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[4], KEYS[5])
end
return {requeued, buried, left}
