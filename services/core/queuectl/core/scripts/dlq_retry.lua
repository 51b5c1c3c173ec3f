--[[ dlq_retry: give dead jobs a fresh set of retries and put them back on their queues.

KEYS[1] dead letter list  P:dead_letter
then for each id in ARGV, three keys:
KEYS[3i-1] job hash        P:jobs:<id>
KEYS[3i]   its queue list  P:jobs | P:queue:<name>
KEYS[3i+1] its wake list   P:wake:<name>

ARGV[i] job ids.

Returns the number of jobs moved. An id is moved only if LREM removed it from
the DLQ here, so concurrent retries of one id move it once.
]]
local t = redis.call('TIME')
local nows = string.format('%.6f', tonumber(t[1]) + tonumber(t[2]) / 1000000)
local moved = 0
for i = 1, #ARGV do
  local id = ARGV[i]
  local job, queue, wake = KEYS[3 * i - 1], KEYS[3 * i], KEYS[3 * i + 1]
  if redis.call('HGET', job, 'state') == 'dead' and redis.call('LREM', KEYS[1], 1, id) == 1 then
    redis.call('HSET', job, 'state', 'pending', 'attempts', 0, 'interrupted', 0, 'lost', 0, 'updated_at', nows,
      'exit_code', '', 'last_error', '', 'finished_at', '', 'started_at', '',
      'worker', '', 'run_at', '')
    redis.call('RPUSH', queue, id)
    if redis.call('LLEN', wake) == 0 then
      redis.call('RPUSH', wake, '1')
    end
    moved = moved + 1
  end
end
return moved
