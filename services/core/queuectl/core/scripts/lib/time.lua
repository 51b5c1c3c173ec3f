-- server_time(): Redis's clock as epoch seconds, and as the string records store.
-- Every pod reads the same clock, so skewed hosts agree on when something is due.
local function server_time()
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  return now, string.format('%.6f', now)
end

-- due_time(now, run_at, delay): when a job enqueued now is due, from its run_at (epoch
-- seconds as text, '' for none) or else its delay (seconds as text, '' for none): the
-- time (nil for none), as the record stores it, and whether that is later than now.
-- A delay counts from Redis's clock, like every other time, not from the caller's.
local function due_time(now, run_at_s, delay)
  local run_at = tonumber(run_at_s)
  if run_at_s == '' and delay ~= '' then
    run_at = now + tonumber(delay)
    run_at_s = string.format('%.6f', run_at)
  end
  return run_at, run_at_s, run_at ~= nil and run_at > now
end
