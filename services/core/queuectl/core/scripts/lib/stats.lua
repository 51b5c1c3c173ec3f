-- bump(stats, field): count one more in P:stats. Counters are best-effort: a stats key
-- of the wrong type, or a field someone overwrote with text, is left alone.
--- @include "guard"
--- @include "job"
-- HINCRBY refuses both (WRONGTYPE, not an integer) without writing: one command.
local function bump(stats, field)
  try('HINCRBY', stats, field, 1)
end
