--[[ promote: move due retries and due delayed jobs back onto their queues, earliest first.

KEYS[1] retry zset          P:retry_queue
KEYS[2] delayed zset        P:delayed
KEYS[3] quarantine zset     P:quarantine
KEYS[4] quarantine reasons  P:quarantine:why
KEYS[5] queue names set     P:queues
KEYS[6] job hash prefix     P:jobs:    (job hash = prefix .. id)
KEYS[7] default queue list  P:jobs     (the queue list of 'default')
KEYS[8] queue list prefix   P:queue:   (queue list of any other queue = prefix .. name)
KEYS[9] wake list prefix    P:wake:    (wake list = prefix .. name)
KEYS[10] index prefix       P:idx:     (per-queue index = prefix .. name .. ':' .. state)

ARGV[1] how many due entries to handle at most (the batch)
ARGV[2] "1": report each job moved (for spans and debug lines); "0": counts only

Returns {promoted, next_due, now, notes, moved, counts, dues}: how many moved; the
earliest score left in either set ("" when both are empty or unusable); the server's
time; what was set aside on the way (ids moved to quarantine, a set of the wrong type
skipped); with ARGV[2] "1", for each job moved five entries: id, queue, source ("retry"
or "delayed"), due time, trace context (else empty); three entries per queue and
source that moved jobs: queue, source, how many; and each moved job's due time (for
the lag metric). A moved job's ready_at is its due time.
A scheduler sleeps until next_due, or calls again at once while a full batch moved.
Or {-91, why} NOPERM, nothing written.

Writes: * : 1 2 3 4 5 7 jobs queues wakes indexes | -91: none

The due entries are read here (ZRANGEBYSCORE ... LIMIT, so a call costs its batch, not
the size of the sets), in the same atomic step that moves them: two schedulers running
at once never promote one item twice. Keys are built from the prefixes in KEYS the way
prune.lua builds them; under a hash-tagged prefix (required on a Cluster) they all
share one slot. Everything is read and checked (types, ACL) before the first write. Of a
record only state, queue and trace_context are read, so only they are checked (and that
it is a hash): a job whose record is not a hash, whose state is unknown or whose queue
is not a name, or whose queue key has the wrong type, leaves the set for quarantine; a
field promotion does not read is checked by the fetch, which quarantines the record
before it runs. An entry whose record vanished or moved on is dropped. A call costs
about 9 µs a job in Redis, most of it the HMGET and HSET of each record.
]]
--- @include "time"
--- @include "guard"
--- @include "job"
--- @include "quarantine"

local qzset, qwhy, queues = KEYS[3], KEYS[4], KEYS[5]
local job_prefix, default_queue, queue_prefix, wake_prefix, index_prefix =
  KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local batch, detail = tonumber(ARGV[1]), ARGV[2] == '1'
local now, nows = server_time()
local notes = {}

-- The due entries of both sets, merged by due time, at most `batch` of them.
local sets, due = {}, {}
for z = 1, 2 do
  local why = bad_type(KEYS[z], 'zset')
  if why then
    notes[#notes + 1] = 'skipped: ' .. why
  else
    sets[#sets + 1] = KEYS[z]
    local got = redis.call('ZRANGEBYSCORE', KEYS[z], '-inf', nows, 'WITHSCORES', 'LIMIT', 0, batch)
    for i = 1, #got, 2 do
      due[#due + 1] = {z = KEYS[z], id = got[i], score = got[i + 1], at = tonumber(got[i + 1]),
        source = z == 1 and 'retry' or 'delayed'}
    end
  end
end
if #due > batch then
  -- Both sets had due entries: the earliest of the two win (each part is already sorted).
  table.sort(due, function(a, b) return a.at < b.at end)
  for i = #due, batch + 1, -1 do due[i] = nil end
elseif #due > 0 and due[1].z ~= due[#due].z then
  table.sort(due, function(a, b) return a.at < b.at end)
end

-- What each queue's keys are, and whether jobs can be pushed there (read once per queue).
local qinfo = {}
local function queue_info(name)
  local q = qinfo[name]
  if q then return q end
  local idx = index_prefix .. name .. ':'
  q = {name = name, list = name == 'default' and default_queue or queue_prefix .. name,
       wake = wake_prefix .. name, failed = idx .. 'failed', scheduled = idx .. 'scheduled',
       ids = {}, moved = {}}
  q.bad = bad_type(q.list, 'list')
  q.arm = key_type(q.wake) == 'none'
  q.indexes = {}
  for _, index in ipairs({q.failed, q.scheduled}) do
    -- Indexes of the wrong type are left alone: doctor reports them.
    if key_type(index) == 'zset' then q.indexes[#q.indexes + 1] = index end
  end
  qinfo[name] = q
  return q
end

-- Pass 1, reads only: decide what happens to each entry. Promotion reads three fields of
-- a record (state, queue, trace_context) and checks those, and that the record is a hash;
-- a field it neither reads nor writes is checked by whatever reads it next (the fetch,
-- which quarantines a record it cannot use), as in every other script.
-- The ACL check of each record's HSET is made per key: ACL key patterns are globs, so a
-- user may write P:jobs:a* and not P:jobs:b*; no check of one key or of a prefix stands
-- for another id's record.
local checks = {{'ZADD', qzset, '0', 'x'}, {'HSET', qwhy, 'x', 'x'}, {'SADD', queues, 'x'}}
for _, z in ipairs(sets) do checks[#checks + 1] = {'ZREM', z, 'x'} end
local job_denied
for i = 1, #due do
  local e = due[i]
  local bad
  if is_name(e.id) then
    local job = job_prefix .. e.id
    e.job = job
    -- HMGET checks the type as it reads; TYPE is asked only to name a wrong type, and to
    -- tell an absent record (dropped) from a hash without a state (quarantined).
    local v = try('HMGET', job, 'state', 'queue', 'trace_context')
    if not v then
      bad = 'record ' .. job .. ' is a ' .. key_type(job) .. ', not a hash'
    else
      local state, name = v[1], v[2]
      if name and is_name(name) then e.q = queue_info(name) end
      if state == 'failed' or state == 'scheduled' then
        if not e.q then
          bad = 'field queue is not a queue name'
        else
          bad, e.state = e.q.bad, state
          if not bad then
            e.action, e.trace = 'move', v[3] or ''
            local ids = e.q.ids
            ids[#ids + 1] = e.id
          end
        end
      elseif state == nil then
        if name or v[3] or key_type(job) ~= 'none' then
          bad = 'field state is not a known state'
        end
      elseif not JOB_STATES[state] then
        bad = 'field state is not a known state'
      end
    end
    job_denied = job_denied or denied_one('HSET', job, 'state', 'x')
  else
    bad = 'invalid job id'
  end
  if not e.action then e.action = bad and 'quarantine' or 'drop' end
  e.bad = bad
end
for _, q in pairs(qinfo) do
  checks[#checks + 1] = {'RPUSH', q.list, 'x'}
  checks[#checks + 1] = {'RPUSH', q.wake, '1'}
  checks[#checks + 1] = {'ZREM', q.failed, 'x'}
  checks[#checks + 1] = {'ZREM', q.scheduled, 'x'}
end
local why = job_denied or denied(checks)
if why then return {NO_PERM, why} end
local quarantine_why = quarantine_unusable(qzset, qwhy)

-- Pass 2, writes. Many-argument calls go in chunks: Lua's unpack has a stack limit.
local CHUNK = 1000
local function each_chunk(cmd, key, ids)
  for i = 1, #ids, CHUNK do
    redis.call(cmd, key, unpack(ids, i, math.min(i + CHUNK - 1, #ids)))
  end
end
local removed = {}
local function remove_from(key, id)
  local ids = removed[key]
  if not ids then
    ids = {}
    removed[key] = ids
  end
  ids[#ids + 1] = id
end
local function remove(e)
  remove_from(e.z, e.id)
  if e.q then
    local indexes = e.q.indexes
    for i = 1, #indexes do remove_from(indexes[i], e.id) end
  end
end

local moved, jobs, dues = 0, {}, {}
for i = 1, #due do
  local e = due[i]
  if e.action == 'move' then
    local q = e.q
    remove(e)
    redis.call('HSET', e.job, 'state', 'pending', 'updated_at', nows, 'ready_at', e.score)
    moved = moved + 1
    dues[moved] = e.score
    q.moved[e.source] = (q.moved[e.source] or 0) + 1
    if detail then
      local n = #jobs
      jobs[n + 1], jobs[n + 2], jobs[n + 3], jobs[n + 4], jobs[n + 5] =
        e.id, q.name, e.source, e.score, e.trace
    end
  elseif e.action == 'drop' then
    remove(e) -- its record vanished or moved on: a stale entry
  elseif quarantine_why then
    notes[#notes + 1] = 'left ' .. e.id .. ' in ' .. e.z .. ' (' .. e.bad
      .. '): cannot quarantine: ' .. quarantine_why
  else
    remove(e)
    quarantine(qzset, qwhy, e.id, e.bad, 'promote', e.state, now)
    notes[#notes + 1] = 'quarantined ' .. e.id .. ': ' .. e.bad
  end
end
for key, ids in pairs(removed) do each_chunk('ZREM', key, ids) end
local queues_ok = key_type(queues)
queues_ok = queues_ok == 'set' or queues_ok == 'none'
for name, q in pairs(qinfo) do
  if #q.ids > 0 then
    each_chunk('RPUSH', q.list, q.ids)
    -- Idle workers block on the wake list; a marker already there wakes one of them.
    if q.arm then redis.call('RPUSH', q.wake, '1') end
    -- The names set is an index: one of the wrong type is left alone (doctor reports it).
    if queues_ok then redis.call('SADD', queues, name) end
  end
end

local next_due = ''
for _, z in ipairs(sets) do
  local first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  if first[2] and (next_due == '' or tonumber(first[2]) < tonumber(next_due)) then
    next_due = first[2]
  end
end
local counts = {}
for name, q in pairs(qinfo) do
  for source, n in pairs(q.moved) do
    local c = #counts
    counts[c + 1], counts[c + 2], counts[c + 3] = name, source, n
  end
end
return {moved, next_due, nows, notes, jobs, counts, dues}
