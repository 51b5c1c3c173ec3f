--[[ enqueue: create a job record and put it on its queue, or in the delayed set.

KEYS[1]  job hash            P:jobs:<id>
KEYS[2]  queue list          P:jobs | P:queue:<name>
KEYS[3]  queue wake list     P:wake:<name>
KEYS[4]  delayed zset        P:delayed
KEYS[5]  queue names set     P:queues
KEYS[6]  dead letter list    P:dead_letter
KEYS[7]  completed zset      P:completed
KEYS[8]  cancelled zset      P:cancelled
KEYS[9]  log key             P:log:<id>
KEYS[10] scheduler wake list P:scheduler_wake

ARGV[1] id   ARGV[2] queue name   ARGV[3] command
ARGV[4] max_retries ("" = policy default)   ARGV[5] timeout seconds ("" = policy default)
ARGV[6] run_at epoch seconds ("" = now)     ARGV[7] "1" to replace an ended job
ARGV[8] trace context ("" = none)
ARGV[9] request token: random per call, the same when a call is re-sent

Returns {0} queued as pending, {1} stored as scheduled,
        {-1, state} id exists and has not ended, {-2, state} id exists, ended, no replace.

A call re-sent after its reply was lost (redis-py retries on a dropped
connection) finds its own token on the record and answers as the first run
did, instead of refusing the job it just stored.

Server time (TIME) is used so that every pod agrees on "now".
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nows = string.format('%.6f', now)

local state = redis.call('HGET', KEYS[1], 'state')
if state and ARGV[9] ~= '' and redis.call('HGET', KEYS[1], 'enqueue_token') == ARGV[9] then
  return {state == 'scheduled' and 1 or 0}
end
if state then
  if state ~= 'completed' and state ~= 'dead' and state ~= 'cancelled' then
    return {-1, state}
  end
  if ARGV[7] ~= '1' then
    return {-2, state}
  end
  redis.call('LREM', KEYS[6], 0, ARGV[1])
  redis.call('ZREM', KEYS[7], ARGV[1])
  redis.call('ZREM', KEYS[8], ARGV[1])
  redis.call('DEL', KEYS[1], KEYS[9])
end

local run_at = tonumber(ARGV[6])
local delayed = run_at ~= nil and run_at > now
redis.call('HSET', KEYS[1],
  'id', ARGV[1], 'command', ARGV[3], 'queue', ARGV[2],
  'state', delayed and 'scheduled' or 'pending', 'attempts', 0,
  'max_retries', ARGV[4], 'timeout', ARGV[5], 'run_at', ARGV[6],
  'created_at', nows, 'updated_at', nows, 'lease', 0, 'log_size', 0,
  'trace_context', ARGV[8], 'enqueue_token', ARGV[9])
redis.call('SADD', KEYS[5], ARGV[2])

if delayed then
  redis.call('ZADD', KEYS[4], run_at, ARGV[1])
  -- Wake a sleeping scheduler only if this job is now the earliest one due.
  local first = redis.call('ZRANGE', KEYS[4], 0, 0)
  if first[1] == ARGV[1] and redis.call('LLEN', KEYS[10]) == 0 then
    redis.call('RPUSH', KEYS[10], '1')
  end
  return {1}
end

redis.call('RPUSH', KEYS[2], ARGV[1])
if redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('RPUSH', KEYS[3], '1')
end
return {0}
