--[[ repair: check one job against the invariant doctor keeps, and restore it on request.

The invariant: a job record is in exactly one place that matches its state (its
queue list, the delayed or retry zset, the DLQ, the completed or cancelled set,
the in-flight set of the registered worker named in the record, or quarantine),
plus, for the five states that have one, its queue's index of that state; and
every id in those places has a record. Doctor scans without a lock; this script
re-checks one suspect atomically, so a job that merely moved meanwhile is not
reported.

KEYS[1] job hash               P:jobs:<id>
KEYS[2] quarantine zset        P:quarantine
KEYS[3] quarantine reasons     P:quarantine:why
KEYS[4] worker registry zset   P:workers
KEYS[4+i] candidate key i, of the kind named by ARGV[2+i]

ARGV[1] id   ARGV[2] "check" or "repair"
ARGV[2+i] kind of candidate i: "queue:<name>", "wake:<name>", "retry", "delayed",
          "dead", "completed", "cancelled", "inflight:<worker>",
          "index:<queue>:<state>". The caller passes every place the scan saw the id
          in, plus the places its record's state calls for: its queue and wake list,
          the in-flight set of a processing job, the global set and the per-queue
          index of a scheduled, failed, dead, completed or cancelled one.

Returns {problems, repaired}: one line per problem found ({} when the job is
consistent), and 1 when they were repaired (mode "repair", every key usable);
{-3} when the record names a queue or worker the caller did not pass (it changed
since the scan: scan again); {-90, why} when a quarantine or registry key has the
wrong type; {-91, why} NOPERM.

Writes: * : 1 2 3 rest | -3: none | -90: none | -91: none

Repairs: an entry in a place that does not match is removed; a missing entry is
added (a pending job at the end of its queue; a delayed, retrying, ended job at
its run_at or finished_at); a processing job whose worker is not registered or
does not hold it is handed back to the front of its queue like a reaped one; a
record that cannot be read goes to quarantine.
]]
--- @include "time"
--- @include "guard"
--- @include "job"
--- @include "quarantine"
--- @include "push"

local job, qzset, qwhy, registry = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, mode = ARGV[1], ARGV[2]
local why = quarantine_unusable(qzset, qwhy) or bad_type(registry, 'zset')
if why then return {DATA_ERROR, why} end

local WANT = {queue = 'list', wake = 'list', dead = 'list', retry = 'zset', delayed = 'zset',
  completed = 'zset', cancelled = 'zset', inflight = 'set', index = 'zset'}
-- Where each state that is not pending or processing lives, besides its queue's index.
local GLOBAL = {scheduled = 'delayed', failed = 'retry', dead = 'dead', completed = 'completed',
  cancelled = 'cancelled'}
local places, problems, usable = {}, {}, true
local checks = {{'ZADD', qzset, '0', id}, {'HSET', qwhy, id, 'x'}, {'HSET', job, 'state', 'x'}}
for i = 3, #ARGV do
  local kind, key = ARGV[i], KEYS[i + 2]
  local class = string.match(kind, '^([a-z]+)')
  local p = {kind = kind, key = key, want = WANT[class], class = class, count = 0}
  places[kind] = p
  checks[#checks + 1] = {p.want == 'list' and 'LREM' or (p.want == 'set' and 'SREM' or 'ZREM'),
    key, id}
  why = bad_type(key, p.want)
  if why then
    problems[#problems + 1] = why
    usable = false
  elseif class ~= 'wake' then
    if p.want == 'list' then
      p.count = #redis.call('LPOS', key, id, 'COUNT', 0)
    elseif p.want == 'zset' then
      p.count = redis.call('ZSCORE', key, id) and 1 or 0
    else
      p.count = redis.call('SISMEMBER', key, id)
    end
  end
end

local quarantined = redis.call('ZSCORE', qzset, id)
local rec, bad = read_job(job, id)
local expect, action = {}, nil  -- kinds that must hold the id once; what else to do
local silent = {}  -- places emptied by the repair without being a problem of their own
if quarantined then
  expect = {}
elseif bad then
  action = 'quarantine'
  problems[#problems + 1] = 'its record cannot be read: ' .. bad
elseif rec then
  local state = rec.state
  if not places['queue:' .. rec.queue] or not places['wake:' .. rec.queue] then return {-3} end
  if state == 'pending' then
    expect['queue:' .. rec.queue] = true
  elseif state == 'processing' then
    local held = 'inflight:' .. rec.worker
    if not places[held] then return {-3} end
    if not redis.call('ZSCORE', registry, rec.worker) then
      action = 'handback'
      silent[held] = true
      problems[#problems + 1] = 'processing on worker ' .. rec.worker .. ', which is not registered'
    elseif places[held].count == 0 then
      action = 'handback'
      problems[#problems + 1] = 'processing, but not in the in-flight set of ' .. rec.worker
    else
      expect[held] = true
    end
  else
    expect[GLOBAL[state]] = true
    expect['index:' .. rec.queue .. ':' .. state] = true
  end
end

for kind, p in pairs(places) do
  if p.class ~= 'wake' then
    if expect[kind] then
      if p.count == 0 then
        problems[#problems + 1] = rec.state .. ', but not in ' .. kind
      elseif p.count > 1 then
        problems[#problems + 1] = 'in ' .. kind .. ' ' .. p.count .. ' times'
      end
    elseif p.count > 0 and not silent[kind] then
      local whose = quarantined and ' though it is in quarantine'
        or (not rec and not bad and ' but it has no record') or ''
      problems[#problems + 1] = 'also in ' .. kind .. whose
    end
  end
end
for kind in pairs(expect) do
  if not places[kind] then
    problems[#problems + 1] = rec.state .. ', but not in ' .. kind
    usable = false -- the caller did not pass that place: nothing to add it to
  end
end

if mode ~= 'repair' or #problems == 0 or not usable then return {problems, 0} end
why = denied(checks)
if why then return {NO_PERM, why} end
local now, nows = server_time()

for kind, p in pairs(places) do
  if p.count > 0 and not expect[kind] then
    if p.want == 'list' then
      redis.call('LREM', p.key, 0, id)
    elseif p.want == 'zset' then
      redis.call('ZREM', p.key, id)
    else
      redis.call('SREM', p.key, id)
    end
  end
end

if action == 'quarantine' then
  quarantine(qzset, qwhy, id, bad, 'doctor', '', now)
elseif action == 'handback' then
  redis.call('HSET', job, 'state', 'pending', 'updated_at', nows,
    'last_error', 'worker ' .. rec.worker .. ' lost (found by doctor)',
    'lost', tonumber(rec.lost) + 1, 'interrupted', tonumber(rec.interrupted) + 1)
  push_job(places['queue:' .. rec.queue].key, places['wake:' .. rec.queue].key, id, true,
    job, nows)
end
for kind in pairs(expect) do
  local p = places[kind]
  if p.count > 1 then
    redis.call('LREM', p.key, 1 - p.count, id)
  elseif p.count == 0 then
    if p.class == 'queue' then
      -- Still waiting since it first became ready: keep that time when it is known.
      push_job(p.key, places['wake:' .. rec.queue].key, id, false, job,
        rec.ready_at ~= '' and rec.ready_at or nows)
    elseif p.class == 'dead' then
      redis.call('RPUSH', p.key, id)
    else
      local due = rec.state == 'scheduled' or rec.state == 'failed'
      local score = tonumber(due and rec.run_at or rec.finished_at) or now
      redis.call('ZADD', p.key, score, id)
    end
  end
end
return {problems, 1}
