-- append_tail(key, chunk, cap): keep only the last `cap` bytes of a job's output.
-- A key of the wrong type is left alone (APPEND refuses it without writing): the bytes
-- are still in the log file and counted in the job's log_size.
--- @include "guard"
local function append_tail(key, chunk, cap)
  if #chunk == 0 then return end
  local len = try('APPEND', key, chunk)
  if len and len > cap then
    redis.call('SET', key, redis.call('GETRANGE', key, len - cap, -1))
  end
end
