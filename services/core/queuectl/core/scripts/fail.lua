--[[ fail: record a failed run, then schedule a retry or bury the job in the DLQ,
if the caller still holds the job's lease.

KEYS[1] job hash            P:jobs:<id>
KEYS[2] in-flight set       P:inflight:<worker>
KEYS[3] retry zset          P:retry_queue
KEYS[4] dead letter list    P:dead_letter
KEYS[5] log key             P:log:<id>
KEYS[6] stats hash          P:stats
KEYS[7] scheduler wake list P:scheduler_wake
KEYS[8] quarantine zset     P:quarantine
KEYS[9] quarantine reasons  P:quarantine:why
KEYS[10] its failed index   P:idx:<queue>:failed
KEYS[11] its dead index     P:idx:<queue>:dead
KEYS[12] queue names set    P:queues

ARGV[1] id   ARGV[2] worker id   ARGV[3] lease token
ARGV[4] last output chunk (already capped)   ARGV[5] bytes produced since the last shipment
ARGV[6] log cap in bytes   ARGV[7] exit code ("" when the command never exited by itself)
ARGV[8] error text
ARGV[9..13] policy: max-retries, backoff-base, backoff-factor, backoff-max, and the
        longest delay ever used (seconds; caps backoff-max 0 and overflowing powers)
ARGV[14] the job's queue (as fetched; KEYS[10] and KEYS[11] are built from it)
ARGV[15] backoff-jitter policy (a fraction, "0" = none)   ARGV[16] a random number in [0, 1)
ARGV[17] when the command was spawned (epoch seconds by Redis's clock; "" = unknown)

Returns {1, due}   retry scheduled at epoch `due` (state failed);
        {2}        dead (in the DLQ);
        {-1}       lease lost; nothing is written. A call re-sent after a lost reply
                   finds the record already failed or dead under its lease and
                   answers as the first call did;
        {-3}       the record vanished; the id was dropped from the in-flight set;
        {-92, why} the record cannot be read, or the retry zset / DLQ it must go to
                   has the wrong type: the job was moved to quarantine;
        {-90, why} a key this call needs has the wrong type; {-91, why} NOPERM.

Writes: 1: 1 2 3 5 6 7 10 12 | 2: 1 2 4 5 6 11 12 | -1: none | -3: 2 | -92: 2 8 9 | -90: none | -91: none

The steps are in lib/outcome.lua (fail_job), shared with finish_fetch.lua.
attempts already counts this run (fetch increments it). Runs that ended with
no result (worker lost, handed back at shutdown) are counted in `interrupted`
and consume no retry, so failures = attempts - interrupted; this failure makes
the next run retry number k = failures, which waits
backoff_base * backoff_factor ^ (k - 1) seconds, spread by +/- backoff-jitter of
itself when that is > 0 (so that jobs failing together do not retry in lockstep),
then capped by backoff-max when > 0 and always by ARGV[13].
]]
--- @include "time"
--- @include "outcome"

local now, nows = server_time()
return fail_job({job = KEYS[1], inflight = KEYS[2], retry = KEYS[3], dlq = KEYS[4],
  log = KEYS[5], stats = KEYS[6], swake = KEYS[7], qzset = KEYS[8], qwhy = KEYS[9],
  failed_idx = KEYS[10], dead_idx = KEYS[11], queues = KEYS[12]},
  {id = ARGV[1], worker = ARGV[2], lease = ARGV[3], chunk = ARGV[4], produced = ARGV[5],
   cap = ARGV[6], exit_code = ARGV[7], error = ARGV[8], max_retries = ARGV[9],
   backoff_base = ARGV[10], backoff_factor = ARGV[11], backoff_max = ARGV[12],
   longest = ARGV[13], queue = ARGV[14], jitter = ARGV[15], random = ARGV[16],
   spawned_at = ARGV[17] or ''}, now, nows)
