--[[ cancel: end a job that has not ended yet, wherever it waits or runs.

KEYS[1] job hash            P:jobs:<id>
KEYS[2] its queue list      P:jobs | P:queue:<name>
KEYS[3] retry zset          P:retry_queue
KEYS[4] delayed zset        P:delayed
KEYS[5] in-flight set of the worker the caller saw holding it (any key if none)
KEYS[6] cancelled zset      P:cancelled
KEYS[7] quarantine zset     P:quarantine
KEYS[8..10] its queue's scheduled, failed and cancelled indexes   P:idx:<name>:<state>
KEYS[11] queue names set    P:queues

ARGV[1] id   ARGV[2] worker the caller saw in the record ("" if none)
ARGV[3] queue name the caller built KEYS[2] and KEYS[8..10] from

Returns {0, previous state} cancelled;
        {-1}        no such job;
        {-2, state} already ended;
        {-3}        the job moved (another worker, or the id was replaced) since the
                    caller read it: read and call again;
        {-5}        the job is in quarantine (queuectl quarantine ...);
        {-90, why}  its record cannot be read, or a key it sits in has the wrong type;
        {-91, why}  NOPERM. Nothing is written unless the answer is {0, ...}.

Writes: 0: 1 2 3 4 5 6 8 9 10 11 | -1: none | -2: none | -3: none | -5: none | -90: none | -91: none

A running job is fenced out by bumping its lease: the worker's next log
shipment or finish fails, and the worker stops the process group. The record is
kept until the scheduler's prune.lua removes it, completed-ttl after it ended.
]]
--- @include "time"
--- @include "guard"
--- @include "job"
--- @include "queues"

local job, queue, retry, delayed, inflight, cancelled, qzset =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local scheduled_idx, failed_idx, cancelled_idx, queues = KEYS[8], KEYS[9], KEYS[10], KEYS[11]
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
  or bad_type(cancelled_idx, 'zset') or bad_type(scheduled_idx, 'zset')
  or bad_type(failed_idx, 'zset')
if why then return {DATA_ERROR, why} end
why = denied({{'HSET', job, 'state', 'x'}, {'LREM', queue, '0', id}, {'ZREM', retry, id},
  {'ZREM', delayed, id}, {'SREM', inflight, id}, {'ZADD', cancelled, '0', id},
  {'ZREM', scheduled_idx, id}, {'ZREM', failed_idx, id}, {'ZADD', cancelled_idx, '0', id},
  {'SADD', queues, 'x'}})
if why then return {NO_PERM, why} end

local now, nows = server_time()
if state == 'pending' then
  redis.call('LREM', queue, 0, id)
elseif state == 'failed' then
  redis.call('ZREM', retry, id)
  redis.call('ZREM', failed_idx, id)
elseif state == 'scheduled' then
  redis.call('ZREM', delayed, id)
  redis.call('ZREM', scheduled_idx, id)
elseif state == 'processing' then
  redis.call('SREM', inflight, id)
end
redis.call('HSET', job, 'state', 'cancelled', 'finished_at', nows, 'updated_at', nows,
  'last_error', 'cancelled', 'run_at', '', 'lease', tonumber(rec.lease) + 1)
redis.call('ZADD', cancelled, now, id)
redis.call('ZADD', cancelled_idx, now, id)
note_queue(queues, rec.queue)
return {0, state}
