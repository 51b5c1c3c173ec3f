--[[ finish_fetch: record the outcome of a run the caller holds (complete or fail, fenced
by its lease exactly as complete.lua and fail.lua are) and, once it is recorded, lease
the caller's next job in the same call: one round trip per job on a busy worker, as
BullMQ's moveToFinished does.

KEYS[1]  job hash            P:jobs:<id>
KEYS[2]  in-flight set       P:inflight:<worker>
KEYS[3]  log key             P:log:<id>
KEYS[4]  stats hash          P:stats
KEYS[5]  quarantine zset     P:quarantine
KEYS[6]  quarantine reasons  P:quarantine:why
KEYS[7]  queue names set     P:queues
KEYS[8]  completed zset      P:completed
KEYS[9]  its completed index P:idx:<queue>:completed
KEYS[10] retry zset          P:retry_queue
KEYS[11] dead letter list    P:dead_letter
KEYS[12] scheduler wake list P:scheduler_wake
KEYS[13] its failed index    P:idx:<queue>:failed
KEYS[14] its dead index      P:idx:<queue>:dead
KEYS[15] job hash prefix     P:jobs:   (the next job's hash = prefix .. id)
KEYS[16 .. 15+n]    queue lists to fetch from, highest priority first
KEYS[16+n .. 15+2n] their wake lists, same order

ARGV[1] id   ARGV[2] worker id   ARGV[3] lease token
ARGV[4] last output chunk (already capped)   ARGV[5] bytes produced since the last shipment
ARGV[6] log cap in bytes   ARGV[7] the job's queue (as fetched; the indexes are built from it)
ARGV[8] when the command was spawned (epoch seconds by Redis's clock; "" = unknown)
ARGV[9] outcome: "complete" or "fail"
ARGV[10] exit code ("" when the command never exited by itself)   ARGV[11] error text
ARGV[12..16] policy: max-retries, backoff-base, backoff-factor, backoff-max, longest delay
ARGV[17] backoff-jitter policy   ARGV[18] a random number in [0, 1)
        (ARGV[10..18] as fail.lua's ARGV[7..8, 9..13, 15, 16]; unused for "complete")
ARGV[19] n (number of queues; 0 = record the outcome only)
ARGV[20] job-timeout policy ("0" = none)
ARGV[21] the worker's number for this call, kept in the next job's record (fetch_tag)

Returns {code, detail, next}:
        code, detail  the finish's reply, as complete.lua ({0}) or fail.lua ({1, due},
                      {2}) answers it: 0, 1, 2, -1 (lease lost: nothing is written),
                      -3, -92, -90, -91; detail is the due time, the reason, or "";
        next          after 0, 1 or 2 with n > 0, fetch.lua's reply for the next job
                      ({1, notes, id, ...}, {0, notes}, {2, notes} or {-91, why});
                      otherwise {} (nothing was fetched: call fetch.lua when a job is
                      wanted).

Writes: 0: 1 2 3 4 7 8 9 5 6 rest jobs | 1: 1 2 3 4 7 10 12 13 5 6 rest jobs | 2: 1 2 3 4 7 11 14 5 6 rest jobs | -1: none | -3: 2 | -92: 2 5 6 | -90: none | -91: none

The finish reads and checks everything it relies on before its first write (see
lib/outcome.lua), so every code but 0, 1 and 2 leaves what it found; the fetch step
then runs on a finished state and obeys fetch.lua's rules (lib/take.lua): it writes
the next job's record, the in-flight set, the queue it pops and, for a record that
cannot be used, the quarantine. It re-arms no wake list: only idle slots take markers,
and they fetch with fetch.lua, which re-arms. No TYPE check is made of the in-flight set:
the finish's SREM checked it.
]]
--- @include "time"
--- @include "outcome"
--- @include "take"

local now, nows = server_time()
local a = {id = ARGV[1], worker = ARGV[2], lease = ARGV[3], chunk = ARGV[4], produced = ARGV[5],
  cap = ARGV[6], queue = ARGV[7], spawned_at = ARGV[8], exit_code = ARGV[10], error = ARGV[11],
  max_retries = ARGV[12], backoff_base = ARGV[13], backoff_factor = ARGV[14],
  backoff_max = ARGV[15], longest = ARGV[16], jitter = ARGV[17], random = ARGV[18]}
local k = {job = KEYS[1], inflight = KEYS[2], log = KEYS[3], stats = KEYS[4], qzset = KEYS[5],
  qwhy = KEYS[6], queues = KEYS[7], completed = KEYS[8], index = KEYS[9], retry = KEYS[10],
  dlq = KEYS[11], swake = KEYS[12], failed_idx = KEYS[13], dead_idx = KEYS[14]}
local n = tonumber(ARGV[19])
if n > 0 then
  -- Checked with the finish's own, before its first write: a refusal writes nothing.
  local checks = {{'SADD', k.inflight, 'x'}, {'HSET', KEYS[15] .. 'x', 'state', 'x'}}
  for i = 1, n do
    checks[#checks + 1] = {'LPOP', KEYS[15 + i]}
    checks[#checks + 1] = {'LPUSH', KEYS[15 + i], 'x'}
  end
  local why = denied(checks)
  if why then return {NO_PERM, why, {}} end
end
local reply
if ARGV[9] == 'complete' then
  reply = complete_job(k, a, now, nows)
else
  reply = fail_job(k, a, now, nows)
end
local code = reply[1]
if n == 0 or (code ~= 0 and code ~= 1 and code ~= 2) then return {code, reply[2] or '', {}} end
return {code, reply[2] or '', take_next(k.inflight, KEYS[15], k.qzset, k.qwhy, 15, n, a.worker,
  ARGV[20], now, nows, false, ARGV[21] or '')}
