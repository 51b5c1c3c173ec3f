--- @include "guard"
-- read_job(key, id, reset): the job record, checked field by field; fields named in the
-- optional table `reset` are taken from it instead (what the caller is about to write).
-- Returns rec, nil for a usable record; nil, nil when there is none; nil, why when it
-- cannot be used (wrong type, or a field a script relies on does not parse). The
-- same rules are in queuectl.core.models.record_problem, which the tests keep equal.
local JOB_FIELDS = {'id', 'command', 'queue', 'state', 'attempts', 'max_retries', 'timeout',
  'run_at', 'lease', 'interrupted', 'lost', 'log_size', 'worker', 'exit_code',
  'created_at', 'updated_at', 'started_at', 'finished_at', 'ready_at', 'trace_context', 'env',
  'spawned_at'}
local JOB_STATES = {pending = true, scheduled = true, processing = true, completed = true,
  failed = true, dead = true, cancelled = true}
local MAX_TIMEOUT = 30 * 86400

local function is_name(s)
  return s ~= nil and #s >= 1 and #s <= 128 and string.find(s, '^[A-Za-z0-9._-]+$') ~= nil
end

local function is_count(s)
  return #s <= 15 and string.find(s, '^%d+$') ~= nil
end

-- Plain decimals only ("12", "12.5"): tonumber alone would take "0x1f", " 5" and "inf".
local function is_decimal(s)
  return #s <= 32 and (string.find(s, '^%d+$') ~= nil or string.find(s, '^%d+%.%d+$') ~= nil)
end

local function env_problem(s)
  if string.sub(s, 1, 1) ~= '{' then return 'field env is not a JSON object' end
  local ok, value = pcall(cjson.decode, s)
  if not ok or type(value) ~= 'table' then return 'field env is not a JSON object' end
  for name, v in pairs(value) do
    if type(name) ~= 'string' or type(v) ~= 'string' then
      return 'field env is not an object of strings'
    end
    if not string.find(name, '^[A-Za-z_][A-Za-z0-9_]*$') or string.sub(name, 1, 9) == 'QUEUECTL_'
        or string.find(v, '\0', 1, true) then
      return 'field env has a variable QueueCTL refuses'
    end
  end
  return nil
end

local function read_job(key, id, reset)
  -- HMGET checks the type as it reads; TYPE is asked only to tell an absent key from a
  -- hash without an id field, and to name a wrong type.
  local v = try('HMGET', key, unpack(JOB_FIELDS))
  if not v then
    return nil, 'record ' .. key .. ' is a ' .. redis.call('TYPE', key)['ok'] .. ', not a hash'
  end
  if not v[1] and redis.call('TYPE', key)['ok'] == 'none' then return nil, nil end
  local rec = {}
  for i, name in ipairs(JOB_FIELDS) do rec[name] = v[i] or '' end
  for name, value in pairs(reset or {}) do rec[name] = value end
  if rec.id ~= id then return nil, 'field id is not ' .. id end
  if rec.command == '' then return nil, 'field command is empty' end
  if not is_name(rec.queue) then return nil, 'field queue is not a queue name' end
  if not JOB_STATES[rec.state] then return nil, 'field state is not a known state' end
  for _, name in ipairs({'attempts', 'lease', 'interrupted', 'lost', 'log_size'}) do
    if rec[name] == '' then
      rec[name] = '0'
    elseif not is_count(rec[name]) then
      return nil, 'field ' .. name .. ' is not a number'
    end
  end
  if rec.max_retries ~= '' and not (is_count(rec.max_retries)
      and tonumber(rec.max_retries) <= 1000) then
    return nil, 'field max_retries is not a number from 0 to 1000'
  end
  if rec.timeout ~= '' and not (is_decimal(rec.timeout) and tonumber(rec.timeout) > 0
      and tonumber(rec.timeout) <= MAX_TIMEOUT) then
    return nil, 'field timeout is not a number of seconds'
  end
  for _, name in ipairs({'run_at', 'created_at', 'updated_at', 'started_at', 'finished_at',
      'ready_at', 'spawned_at'}) do
    if rec[name] ~= '' and not is_decimal(rec[name]) then
      return nil, 'field ' .. name .. ' is not a time'
    end
  end
  if rec.exit_code ~= '' and not (#rec.exit_code <= 11
      and string.find(rec.exit_code, '^-?%d+$') ~= nil) then
    return nil, 'field exit_code is not a number'
  end
  if rec.worker ~= '' and not is_name(rec.worker) then
    return nil, 'field worker is not a worker id'
  end
  if rec.env ~= '' then
    local why = env_problem(rec.env)
    if why then return nil, why end
  end
  return rec, nil
end
