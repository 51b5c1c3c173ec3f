-- Checks a script makes before its first write. Redis keeps every write a script
-- made before it raised, so a script reads and checks everything it relies on
-- first, then writes; these helpers never raise on data another client wrote.

-- 'none' when the key does not exist, else its type ('string', 'list', 'hash', ...).
local function key_type(key)
  return redis.call('TYPE', key)['ok']
end

-- nil when `key` is absent or of type `want`, else why it cannot be used.
local function bad_type(key, want)
  local t = key_type(key)
  if t == 'none' or t == want then return nil end
  return 'key ' .. key .. ' is a ' .. t .. ', not a ' .. want
end

-- Runs a command that checks a key's type as a side effect (a read, or the first write of
-- a script: a command refused with WRONGTYPE writes nothing). Returns its reply, or nil
-- and Redis's error for a key of the wrong type or a value it cannot count on (those
-- are data another client planted); any other error (OOM, NOPERM) is raised as it would
-- be by redis.call.
local function try(...)
  local reply = redis.pcall(...)
  if type(reply) == 'table' and reply['err'] then
    local err = reply['err']
    if string.find(err, '^WRONGTYPE') or string.find(err, 'not an integer', 1, true)
        or string.find(err, 'overflow', 1, true) then
      return nil, err
    end
    error(reply)
  end
  return reply
end

-- nil when the caller's ACL user may run `cmd` on `key` with `...`, else why not (a
-- script that checks many keys in a loop calls this rather than build a table for each).
-- redis.acl_check_cmd exists from Redis 7.0; older servers skip the check.
local function denied_one(cmd, key, ...)
  if redis.acl_check_cmd and not redis.acl_check_cmd(cmd, key, ...) then
    return 'NOPERM: this user has no permission to run ' .. cmd .. ' on ' .. key
  end
  return nil
end

-- nil when the caller's ACL user may run every command in `cmds` (each {cmd, key, args...}),
-- else why not.
local function denied(cmds)
  if not redis.acl_check_cmd then return nil end
  for _, c in ipairs(cmds) do
    local why = denied_one(unpack(c))
    if why then return why end
  end
  return nil
end

-- Codes every script may answer; nothing has been written when it does.
local DATA_ERROR = -90  -- {-90, why}: a key this call needs has the wrong type
local NO_PERM = -91     -- {-91, why}: the ACL user may not run a command this call needs
local QUARANTINED = -92 -- {-92, why}: the job was moved to quarantine (the only write)
