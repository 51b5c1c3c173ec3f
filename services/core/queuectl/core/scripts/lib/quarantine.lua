-- Quarantine: where a job goes when its record, or a key it must move to, cannot be
-- used. Its record is left exactly as it was found, for the operator to inspect.
-- QUARANTINE is a zset of ids by time, QUARANTINE_WHY a hash of id -> JSON reason.
--- @include "guard"

-- nil when both quarantine keys are usable, else why not.
local function quarantine_unusable(zset, why_hash)
  return bad_type(zset, 'zset') or bad_type(why_hash, 'hash')
end

local function quarantine(zset, why_hash, id, why, by, state, now)
  redis.call('ZADD', zset, now, id)
  redis.call('HSET', why_hash, id, cjson.encode({reason = why, by = by, state = state or '',
    at = string.format('%.6f', now)}))
end
