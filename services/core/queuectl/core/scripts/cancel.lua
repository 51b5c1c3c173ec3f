--[[ cancel: end a job that has not ended yet, wherever it waits or runs.

KEYS[1] job hash            P:jobs:<id>
KEYS[2] its queue list      P:jobs | P:queue:<name>
KEYS[3] retry zset          P:retry_queue
KEYS[4] delayed zset        P:delayed
KEYS[5] in-flight set of the worker the caller saw holding it (any key if none)
KEYS[6] cancelled zset      P:cancelled
KEYS[7] log key             P:log:<id>
KEYS[8] quarantine zset     P:quarantine

ARGV[1] id   ARGV[2] worker the caller saw in the record ("" if none)
ARGV[3] queue name the caller built KEYS[2] from
ARGV[4] completed-ttl policy in seconds (cancelled jobs are kept as long as completed ones)

Returns {0, previous state} cancelled;
        {-1}        no such job;
        {-2, state} already ended;
        {-3}        the job moved (another worker, or the id was replaced) since the
                    caller read it: read and call again;
        {-5}        the job is in quarantine (queuectl quarantine ...);
        {-90, why}  its record cannot be read, or a key it sits in has the wrong type;
        {-91, why}  NOPERM. Nothing is written unless the answer is {0, ...}.

Writes: 0: 1 2 3 4 5 6 7 | -1: none | -2: none | -3: none | -5: none | -90: none | -91: none

A running job is fenced out by bumping its lease: the worker's next log
shipment or finish fails, and the worker stops the process group.
]]
--- @include "time"
--- @include "guard"
--- @include "job"
--- @include "finish"

local job, queue, retry, delayed, inflight, cancelled, logkey, qzset =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local id = ARGV[1]
local why = bad_type(qzset, 'zset')
if why then return {DATA_ERROR, why} end
if redis.call('ZSCORE', qzset, id) then return {-5} end
local rec, bad = read_job(job, id)
if bad then return {DATA_ERROR, 'job ' .. id .. ' has a record that cannot be read: ' .. bad} end
if not rec then return {-1} end
local state = rec.state
if state == 'completed' or state == 'dead' or state == 'cancelled' then return {-2, state} end
if rec.queue ~= ARGV[3] then return {-3} end
local place = ({pending = {queue, 'list'}, failed = {retry, 'zset'},
  scheduled = {delayed, 'zset'}, processing = {inflight, 'set'}})[state]
if state == 'processing' and rec.worker ~= ARGV[2] then return {-3} end
why = bad_type(place[1], place[2]) or bad_type(cancelled, 'zset')
if why then return {DATA_ERROR, why} end
why = denied({{'HSET', job, 'state', 'x'}, {'LREM', queue, '0', id}, {'ZREM', retry, id},
  {'ZREM', delayed, id}, {'SREM', inflight, id}, {'ZADD', cancelled, '0', id},
  {'EXPIRE', job, '1'}, {'EXPIRE', logkey, '1'}})
if why then return {NO_PERM, why} end

local now, nows = server_time()
if state == 'pending' then
  redis.call('LREM', queue, 0, id)
elseif state == 'failed' then
  redis.call('ZREM', retry, id)
elseif state == 'scheduled' then
  redis.call('ZREM', delayed, id)
elseif state == 'processing' then
  redis.call('SREM', inflight, id)
end
redis.call('HSET', job, 'state', 'cancelled', 'finished_at', nows, 'updated_at', nows,
  'last_error', 'cancelled', 'run_at', '', 'lease', tonumber(rec.lease) + 1)
redis.call('ZADD', cancelled, now, id)
local ttl = tonumber(ARGV[4])
set_expiry(job, ttl)
-- The output of a run that was stopped (or failed before) goes with the record;
-- left behind, a later job with this id would inherit it.
if not bad_type(logkey, 'string') then set_expiry(logkey, ttl) end
return {0, state}
