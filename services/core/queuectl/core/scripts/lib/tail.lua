-- append_tail(key, chunk, cap): keep only the last `cap` bytes of a job's output.
-- The caller has checked that `key` is a string (or absent).
local function append_tail(key, chunk, cap)
  if #chunk == 0 then return end
  local len = redis.call('APPEND', key, chunk)
  if len > cap then
    redis.call('SET', key, redis.call('GETRANGE', key, len - cap, -1))
  end
end
