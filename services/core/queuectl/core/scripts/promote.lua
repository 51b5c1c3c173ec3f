--[[ promote: move due retries and due delayed jobs back onto their queues.

KEYS[1] retry zset    P:retry_queue
KEYS[2] delayed zset  P:delayed
then for each id in ARGV, three keys:
KEYS[3i]   job hash          P:jobs:<id>
KEYS[3i+1] its queue list    P:jobs | P:queue:<name>
KEYS[3i+2] its wake list     P:wake:<name>

ARGV[i] job ids, as read by the caller (ZRANGE ... WITHSCORES), at most a batch.

Returns {promoted, next_due, now}: how many moved; the earliest score left in
either set ("" when both are empty); the server's time. A scheduler sleeps
until next_due.

The caller's read happens outside this script, so every id is re-checked
here: only a ZREM that returns 1 moves a job, which is why two schedulers
running at once never promote one item twice.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nows = string.format('%.6f', now)
local moved = 0

for i = 1, #ARGV do
  local id = ARGV[i]
  local job, queue, wake = KEYS[3 * i], KEYS[3 * i + 1], KEYS[3 * i + 2]
  for z = 1, 2 do
    local score = redis.call('ZSCORE', KEYS[z], id)
    if score and tonumber(score) <= now then
      redis.call('ZREM', KEYS[z], id)
      local state = redis.call('HGET', job, 'state')
      if state == 'failed' or state == 'scheduled' then
        redis.call('HSET', job, 'state', 'pending', 'updated_at', nows)
        redis.call('RPUSH', queue, id)
        if redis.call('LLEN', wake) == 0 then
          redis.call('RPUSH', wake, '1')
        end
        moved = moved + 1
      end
    end
  end
end

local next_due = ''
for z = 1, 2 do
  local first = redis.call('ZRANGE', KEYS[z], 0, 0, 'WITHSCORES')
  if first[2] and (next_due == '' or tonumber(first[2]) < tonumber(next_due)) then
    next_due = first[2]
  end
end
return {moved, next_due, nows}
