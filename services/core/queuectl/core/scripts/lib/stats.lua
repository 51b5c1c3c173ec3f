-- bump(stats, field): count one more in P:stats. Counters are best-effort: a stats key
-- of the wrong type, or a field someone overwrote with text, is left alone.
--- @include "guard"
--- @include "job"
local function bump(stats, field)
  if bad_type(stats, 'hash') then return end
  local v = redis.call('HGET', stats, field)
  if not v or is_count(v) then redis.call('HINCRBY', stats, field, 1) end
end
