-- The two outcomes of a run a worker holds, shared by complete.lua, fail.lua and
-- finish_fetch.lua. `k` names the keys and `a` the arguments (see those headers); both
-- return the script's reply. Each reads and checks everything first; its first write is
-- the SREM from the in-flight set (let_go), which is that set's type check as well.
--- @include "guard"
--- @include "job"
--- @include "quarantine"
--- @include "tail"
--- @include "finish"
--- @include "stats"
--- @include "queues"

-- The fields every finish writes: output size, and when the command was spawned (by
-- Redis's clock, as the worker measured it; "" when it did not say).
local function ended_fields(rec, a, nows)
  local fields = {'finished_at', nows, 'updated_at', nows,
    'log_size', tonumber(rec.log_size) + tonumber(a.produced)}
  if a.spawned_at ~= '' and is_decimal(a.spawned_at) then
    fields[#fields + 1] = 'spawned_at'
    fields[#fields + 1] = a.spawned_at
  end
  return fields
end

local function complete_job(k, a, now, nows)
  local rec, bad, hold = hold_of(k.job, k.inflight, a.id, a.worker, a.lease, a.queue)
  if hold == 'lost' then return {-1} end
  if hold == 'ok' and rec.state == 'completed' then return {0} end
  if hold == 'ok' and rec.state ~= 'processing' then return {-1} end
  -- Written, never read: only their type is asked.
  if hold == 'ok' then bad = bad_type(k.completed, 'zset') or bad_type(k.index, 'zset') end
  local why = denied({{'SREM', k.inflight, a.id}, {'ZADD', k.qzset, '0', a.id},
    {'HSET', k.qwhy, a.id, 'x'}, {'HSET', k.job, 'state', 'x'}, {'ZADD', k.completed, '0', a.id},
    {'APPEND', k.log, 'x'}, {'SET', k.log, 'x'}, {'HINCRBY', k.stats, 'x', '1'},
    {'ZADD', k.index, '0', a.id}, {'SADD', k.queues, 'x'}})
  if why then return {NO_PERM, why} end
  local reply = unheld(hold, bad, rec, k.inflight, k.qzset, k.qwhy, a.id, 'exited 0',
    'complete', now)
  if reply then return reply end

  why = let_go(k.inflight, a.id)
  if why then return {DATA_ERROR, why} end
  append_tail(k.log, a.chunk, tonumber(a.cap))
  redis.call('HSET', k.job, 'state', 'completed', 'exit_code', 0, 'last_error', '',
    unpack(ended_fields(rec, a, nows)))
  bump(k.stats, 'completed:' .. rec.queue)
  redis.call('ZADD', k.completed, now, a.id)
  redis.call('ZADD', k.index, now, a.id)
  note_queue(k.queues, rec.queue)
  return {0}
end

-- The delay before the next run, after `failures` failed runs (see fail.lua's header).
local function retry_delay(failures, a)
  local longest = tonumber(a.longest)
  local cap = tonumber(a.backoff_max)
  if cap <= 0 or cap > longest then cap = longest end
  -- factor ^ k overflows to inf for large k; min() turns that into the cap.
  local delay = math.min(tonumber(a.backoff_base) * tonumber(a.backoff_factor) ^ (failures - 1),
    cap)
  local jitter = tonumber(a.jitter)
  if jitter > 0 then
    delay = math.min(delay * (1 + jitter * (2 * tonumber(a.random) - 1)), cap)
  end
  return delay
end

local function fail_job(k, a, now, nows)
  local rec, bad, hold = hold_of(k.job, k.inflight, a.id, a.worker, a.lease, a.queue)
  if hold == 'lost' then return {-1} end
  if hold == 'ok' then
    if rec.state == 'failed' then return {1, rec.run_at} end
    if rec.state == 'dead' then return {2} end
    if rec.state ~= 'processing' then return {-1} end
  end

  local retrying = false
  if hold == 'ok' then
    local max_retries = tonumber(rec.max_retries ~= '' and rec.max_retries or a.max_retries)
    local failures = tonumber(rec.attempts) - tonumber(rec.interrupted)
    retrying = failures <= max_retries
    if retrying then
      bad = bad_type(k.retry, 'zset') or bad_type(k.failed_idx, 'zset')
    else
      bad = bad_type(k.dlq, 'list') or bad_type(k.dead_idx, 'zset')
    end
  end
  local why = denied({{'SREM', k.inflight, a.id}, {'ZADD', k.qzset, '0', a.id},
    {'HSET', k.qwhy, a.id, 'x'}, {'HSET', k.job, 'state', 'x'}, {'ZADD', k.retry, '0', a.id},
    {'RPUSH', k.dlq, a.id}, {'RPUSH', k.swake, '1'}, {'APPEND', k.log, 'x'},
    {'SET', k.log, 'x'}, {'HINCRBY', k.stats, 'x', '1'}, {'ZADD', k.failed_idx, '0', a.id},
    {'ZADD', k.dead_idx, '0', a.id}, {'SADD', k.queues, 'x'}})
  if why then return {NO_PERM, why} end
  local reply = unheld(hold, bad, rec, k.inflight, k.qzset, k.qwhy, a.id,
    'failed (' .. a.error .. ')', 'fail', now)
  if reply then return reply end

  why = let_go(k.inflight, a.id)
  if why then return {DATA_ERROR, why} end
  append_tail(k.log, a.chunk, tonumber(a.cap))
  local fields = ended_fields(rec, a, nows)
  for _, v in ipairs({'exit_code', a.exit_code, 'last_error', a.error}) do
    fields[#fields + 1] = v
  end
  bump(k.stats, 'failed:' .. rec.queue)
  note_queue(k.queues, rec.queue)

  if retrying then
    local failures = tonumber(rec.attempts) - tonumber(rec.interrupted)
    local due = now + retry_delay(failures, a)
    local dues = string.format('%.6f', due)
    redis.call('HSET', k.job, 'state', 'failed', 'run_at', dues, unpack(fields))
    redis.call('ZADD', k.retry, due, a.id)
    redis.call('ZADD', k.failed_idx, due, a.id)
    -- Wake a sleeping scheduler only if this retry is now the earliest one due.
    local first = redis.call('ZRANGE', k.retry, 0, 0)
    if first[1] == a.id and key_type(k.swake) == 'none' then
      redis.call('RPUSH', k.swake, '1')
    end
    bump(k.stats, 'retried:' .. rec.queue)
    return {1, dues}
  end

  redis.call('HSET', k.job, 'state', 'dead', 'run_at', '', unpack(fields))
  redis.call('RPUSH', k.dlq, a.id)
  redis.call('ZADD', k.dead_idx, now, a.id)
  bump(k.stats, 'dead:' .. rec.queue)
  return {2}
end
