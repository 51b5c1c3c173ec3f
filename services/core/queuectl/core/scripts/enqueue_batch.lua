--[[ enqueue_batch: enqueue a chunk of jobs (what enqueue.lua does for one), all or nothing.

KEYS[1] delayed zset        P:delayed
KEYS[2] queue names set     P:queues
KEYS[3] dead letter list    P:dead_letter
KEYS[4] completed zset      P:completed
KEYS[5] cancelled zset      P:cancelled
KEYS[6] scheduler wake list P:scheduler_wake
KEYS[7] quarantine zset     P:quarantine
KEYS[8] quarantine reasons  P:quarantine:why
then 6 keys for each of the ARGV[1] queues q (from KEYS[9 + 6(q-1)]): its list, its wake
  list, and its scheduled, dead, completed and cancelled indexes
then for each job j, in the order of ARGV[4]: its hash P:jobs:<id>, and when ARGV[2] is "1"
  its log key (only a replace touches it: 1 key a job, else 2)

ARGV[1] number of queues   ARGV[2] "1" to replace ended jobs
ARGV[3] request token: random per call, the same when a call is re-sent
ARGV[4] the jobs, one flat JSON array of ten values a job: id, queue number, command,
        max_retries, timeout, run_at, delay, trace_context, env, old queue number;
        strings ("" = none, the policy default, now), delay in seconds from now by
        Redis's clock, old queue number the queue a replace read from the existing
        record (0 = none)
ARGV[5 ..] the queue names, in the order of their keys

Returns {now, codes, refused}: codes has one character per job, in order: '0' queued as
        pending, '1' stored as scheduled, '4' a replace found the old record in another
        queue (nothing written for that job: read and call again), '-' not stored: refused
        holds {j, code, state} for each such job j, code -1 (the id exists and has not
        ended, or came earlier in this chunk) or -2 (the id exists, has ended or is in
        quarantine, and ARGV[2] is not "1");
        {-90, why, j} a key the chunk needs has the wrong type, or job j's existing
        record cannot be read; {-91, why, j} NOPERM. Nothing of the chunk is written then.

Writes: *: 1 2 3 4 5 6 7 8 rest | -90: none | -91: none
(* is the {now, ...} answer; rest: the queues' and the jobs' keys)

Every check of every job comes before the first write, so a chunk is stored whole or
not at all (under maxmemory Redis refuses a script's first write, never a later one).
A call re-sent after its reply was lost finds its token on the records it stored and
answers as the first run did.
]]
--- @include "time"
--- @include "guard"
--- @include "job"
--- @include "queues"

local delayed, queues, dlq, completed, cancelled, swake, qzset, qwhy =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local nq, replace, token = tonumber(ARGV[1]), ARGV[2] == '1', ARGV[3]
-- Flat, not an array a job: decoding a thousand small tables cost more than the rest.
local jobs = cjson.decode(ARGV[4])
local n = #jobs / 10
local function qkey(q, i) return KEYS[8 + 6 * (q - 1) + i] end
local per_job = replace and 2 or 1
local function jkey(j, i) return KEYS[8 + 6 * nq + per_job * (j - 1) + i] end
local now, nows = server_time()

-- Type checks, each key once; `checked` remembers the answer.
local checked = {}
local function bad(key, want)
  if checked[key] == nil then checked[key] = bad_type(key, want) or false end
  return checked[key] or nil
end
local why = bad(qzset, 'zset') or bad(qwhy, 'hash')
if why then return {DATA_ERROR, why, 0} end
local any_quarantined = redis.call('ZCARD', qzset) > 0

-- Most chunks are all new jobs: one EXISTS over every record says so, and spares a
-- TYPE a job.
-- A user made with the CLI's ACL line of an earlier release has no EXISTS: say so.
local job_keys = {}
for j = 1, n do job_keys[j] = jkey(j, 1) end
if n > 0 then
  why = denied_one('EXISTS', job_keys[1])
  if why then return {NO_PERM, why, 0} end
end
local any_exist = n > 0 and redis.call('EXISTS', unpack(job_keys)) > 0

-- Pass 1: decide every job; nothing is written.
-- plan[j]: how job j is stored ('new', 'ended', 'quarantined'); at[j] its run_at as the
-- record stores it, when it has one; due[j] that time as a number, when it is later than
-- now. list_ok[q]: queue q's list was checked.
local plan, at, due, out, seen, list_ok = {}, {}, {}, {nows}, {}, {}
local later_any = false
for j = 1, n do
  local b = 10 * (j - 1)
  local id, q, old = jobs[b + 1], jobs[b + 2], jobs[b + 10]
  local job = job_keys[j]
  local run_at, run_at_s, later = nil, '', false
  if jobs[b + 6] ~= '' or jobs[b + 7] ~= '' then
    run_at, run_at_s, later = due_time(now, jobs[b + 6], jobs[b + 7])
  end
  why = later and (bad(delayed, 'zset') or bad(qkey(q, 3), 'zset')) or nil
  if not why and not list_ok[q] then
    why = bad(qkey(q, 1), 'list')
    list_ok[q] = not why
  end
  if why then return {DATA_ERROR, why, j} end
  local p = nil
  if seen[id] then
    out[j + 1] = {-1, seen[id]}
  else
    -- A new job's record is absent: TYPE says so without reading the record's fields.
    local rec, broken = nil, nil
    if any_exist and key_type(job) ~= 'none' then rec, broken = read_job(job, id) end
    if rec and token ~= '' and redis.call('HGET', job, 'enqueue_token') == token then
      out[j + 1] = rec.state == 'scheduled' and 1 or 0
    else
      local quarantined = any_quarantined and redis.call('ZSCORE', qzset, id)
      if broken and not quarantined then
        return {DATA_ERROR, 'job ' .. id .. ' exists but its record cannot be read: ' .. broken, j}
      end
      if quarantined then
        if replace then p = 'quarantined' else out[j + 1] = {-2, 'quarantined'} end
      elseif rec then
        if rec.state ~= 'completed' and rec.state ~= 'dead' and rec.state ~= 'cancelled' then
          out[j + 1] = {-1, rec.state}
        elseif not replace then
          out[j + 1] = {-2, rec.state}
        elseif old == 0 or ARGV[4 + old] ~= rec.queue then
          out[j + 1] = -4
        else
          why = bad(dlq, 'list') or bad(completed, 'zset') or bad(cancelled, 'zset')
            or bad(qkey(old, 4), 'zset') or bad(qkey(old, 5), 'zset') or bad(qkey(old, 6), 'zset')
          if why then return {DATA_ERROR, why, j} end
          p = 'ended'
        end
      else
        p = 'new'
      end
      if p then
        -- One check a job, without denied()'s tables: a chunk has a thousand.
        why = denied_one('HSET', job, 'state', 'x')
          or (p ~= 'new' and denied({{'DEL', job}, {'DEL', jkey(j, 2)}}))
        if why then return {NO_PERM, why, j} end
        plan[j] = p
        if run_at_s ~= '' then at[j] = run_at_s end
        if later then due[j] = run_at end
        out[j + 1] = later and 1 or 0
        later_any = later_any or later
      end
    end
    -- A later job with this id meets this one as the record it would find.
    if out[j + 1] == 0 then seen[id] = 'pending' elseif out[j + 1] == 1 then seen[id] = 'scheduled' end
  end
end

-- The commands every stored job needs, on the chunk's shared and queue keys.
local cmds = {{'SADD', queues, 'x'}}
if later_any then
  cmds[#cmds + 1] = {'ZADD', delayed, '0', 'x'}
  cmds[#cmds + 1] = {'RPUSH', swake, '1'}
end
if replace then
  for _, c in ipairs({{'LREM', dlq, '0', 'x'}, {'ZREM', completed, 'x'},
      {'ZREM', cancelled, 'x'}, {'ZREM', qzset, 'x'}, {'HDEL', qwhy, 'x'}}) do
    cmds[#cmds + 1] = c
  end
end
for q = 1, nq do
  cmds[#cmds + 1] = {'RPUSH', qkey(q, 1), 'x'}
  cmds[#cmds + 1] = {'RPUSH', qkey(q, 2), '1'}
  cmds[#cmds + 1] = {'ZADD', qkey(q, 3), '0', 'x'}
  if replace then
    for i = 4, 6 do cmds[#cmds + 1] = {'ZREM', qkey(q, i), 'x'} end
  end
end
why = denied(cmds)
if why then return {NO_PERM, why, 0} end

-- Pass 2: the writes.
local pending, touched, mine = {}, {}, {}
for j = 1, n do
  local p = plan[j]
  if p then
    local id, q, command, retries, timeout, _, _, trace, env, old =
      unpack(jobs, 10 * (j - 1) + 1, 10 * j)
    local job, logkey = job_keys[j], replace and jkey(j, 2)
    if p == 'quarantined' then
      redis.call('ZREM', qzset, id)
      redis.call('HDEL', qwhy, id)
      redis.call('DEL', job, logkey)
    elseif p == 'ended' then
      redis.call('LREM', dlq, 0, id)
      redis.call('ZREM', completed, id)
      redis.call('ZREM', cancelled, id)
      redis.call('ZREM', qkey(old, 4), id)
      redis.call('ZREM', qkey(old, 5), id)
      redis.call('ZREM', qkey(old, 6), id)
      redis.call('DEL', job, logkey)
    end
    local later = due[j]
    touched[q] = true
    -- The arguments in the call itself, not in a table a job: a chunk has a thousand.
    if later then
      redis.call('HSET', job, 'id', id, 'command', command, 'queue', ARGV[4 + q],
        'state', 'scheduled', 'attempts', '0', 'max_retries', retries, 'timeout', timeout,
        'run_at', at[j], 'created_at', nows, 'updated_at', nows, 'lease', '0',
        'log_size', '0', 'trace_context', trace, 'enqueue_token', token, 'env', env)
      redis.call('ZADD', delayed, later, id)
      redis.call('ZADD', qkey(q, 3), later, id)
      mine[id] = true
    else
      -- ready_at is what push_job writes, in the same HSET (the queue's pushes are one
      -- RPUSH below); a scheduled job has none.
      redis.call('HSET', job, 'id', id, 'command', command, 'queue', ARGV[4 + q],
        'state', 'pending', 'attempts', '0', 'max_retries', retries, 'timeout', timeout,
        'run_at', at[j] or '', 'created_at', nows, 'updated_at', nows, 'lease', '0',
        'log_size', '0', 'trace_context', trace, 'enqueue_token', token, 'env', env,
        'ready_at', nows)
      pending[q] = pending[q] or {}
      table.insert(pending[q], id)
    end
  end
end
for q = 1, nq do
  if touched[q] then note_queue(queues, ARGV[4 + q]) end
  if pending[q] then
    redis.call('RPUSH', qkey(q, 1), unpack(pending[q]))
    if key_type(qkey(q, 2)) == 'none' then redis.call('RPUSH', qkey(q, 2), '1') end
  end
end
if later_any then
  -- Wake a sleeping scheduler only if a job of this chunk is now the earliest one due.
  local first = redis.call('ZRANGE', delayed, 0, 0)
  if first[1] and mine[first[1]] and key_type(swake) == 'none' then
    redis.call('RPUSH', swake, '1')
  end
end
-- The answer: one character a job, cheap to send and to parse for a thousand of them.
local CODE = {[0] = '0', [1] = '1', [-4] = '4'}
local codes, refused = {}, {}
for j = 1, n do
  local r = out[j + 1]
  if type(r) == 'table' then
    codes[j] = '-'
    refused[#refused + 1] = j
    refused[#refused + 1] = r[1]
    refused[#refused + 1] = r[2]
  else
    codes[j] = CODE[r]
  end
end
return {nows, table.concat(codes), refused}
