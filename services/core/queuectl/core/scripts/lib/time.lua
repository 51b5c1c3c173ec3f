-- server_time(): Redis's clock as epoch seconds, and as the string records store.
-- Every pod reads the same clock, so skewed hosts agree on when something is due.
local function server_time()
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  return now, string.format('%.6f', now)
end
