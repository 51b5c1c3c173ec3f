--[[ purge: delete dead jobs, their records and their output.

KEYS[1] dead letter list  P:dead_letter
then for each id in ARGV, two keys:
KEYS[2i]   job hash  P:jobs:<id>
KEYS[2i+1] log key   P:log:<id>

ARGV[i] job ids (a batch read from the DLQ by the caller).

Returns the number of jobs deleted. A job retried between the caller's read
and this script is no longer dead and is left alone.
]]
local n = 0
for i = 1, #ARGV do
  if redis.call('HGET', KEYS[2 * i], 'state') == 'dead'
      and redis.call('LREM', KEYS[1], 1, ARGV[i]) == 1 then
    redis.call('DEL', KEYS[2 * i], KEYS[2 * i + 1])
    n = n + 1
  elseif redis.call('EXISTS', KEYS[2 * i]) == 0 then
    -- A DLQ entry whose record is gone (deleted by hand) is dropped too.
    n = n + redis.call('LREM', KEYS[1], 0, ARGV[i])
  end
end
return n
