-- bump(stats, field): count one more in P:stats. Counters are best-effort: a stats key
-- of the wrong type, or a field someone overwrote with text, is left alone.
-- HINCRBY refuses both (WRONGTYPE, not an integer) without writing: one command.
--- @include "guard"
local function bump(stats, field)
  try('HINCRBY', stats, field, 1)
end
