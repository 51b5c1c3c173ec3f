--[[ log_append: ship a chunk of a running job's output, if the caller holds the lease.

KEYS[1] job hash   P:jobs:<id>
KEYS[2] log key    P:log:<id>

ARGV[1] id   ARGV[2] worker id   ARGV[3] lease token
ARGV[4] output chunk (already capped)   ARGV[5] bytes produced since the last shipment
ARGV[6] log cap in bytes

Returns {0}   stored;
        {-1}  lease lost (taken over or cancelled): the caller must stop the job;
        {-2, why} the record cannot be read: nothing is written and the run goes on
              (its complete or fail moves it to quarantine);
        {-91, why} NOPERM.

Writes: 0: 1 2 | -1: none | -2: none | -91: none

The log key keeps the last `cap` bytes; the job's log_size counts every byte
produced, so a follower can tell how much it missed. A log key of the wrong type
is left alone: the bytes are still in the log file and counted in log_size.
]]
--- @include "guard"
--- @include "job"
--- @include "tail"

local job, logkey = KEYS[1], KEYS[2]
local rec, bad = read_job(job, ARGV[1])
if bad then return {-2, bad} end
if not rec or rec.state ~= 'processing' or rec.lease ~= ARGV[3] or rec.worker ~= ARGV[2] then
  return {-1}
end
local why = denied({{'HSET', job, 'log_size', '1'}, {'APPEND', logkey, 'x'},
  {'SET', logkey, 'x'}})
if why then return {NO_PERM, why} end
if not bad_type(logkey, 'string') then append_tail(logkey, ARGV[4], tonumber(ARGV[6])) end
redis.call('HSET', job, 'log_size', tonumber(rec.log_size) + tonumber(ARGV[5]))
return {0}
