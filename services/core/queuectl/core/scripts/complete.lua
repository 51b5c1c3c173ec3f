--[[ complete: record a successful run, if the caller still holds the job's lease.

KEYS[1] job hash               P:jobs:<id>
KEYS[2] in-flight set          P:inflight:<worker>
KEYS[3] completed zset         P:completed
KEYS[4] log key                P:log:<id>
KEYS[5] stats hash             P:stats
KEYS[6] quarantine zset        P:quarantine
KEYS[7] quarantine reasons     P:quarantine:why
KEYS[8] its completed index    P:idx:<queue>:completed
KEYS[9] queue names set        P:queues

ARGV[1] id   ARGV[2] worker id   ARGV[3] lease token
ARGV[4] last output chunk (already capped)   ARGV[5] bytes produced since the last shipment
ARGV[6] log cap in bytes   ARGV[7] the job's queue (as fetched; KEYS[8] is built from it)
ARGV[8] when the command was spawned (epoch seconds by Redis's clock; "" = unknown)

Returns {0}        done (also when this very call is re-sent after a lost reply: the
                   record is already completed under this lease);
        {-1}       lease lost: the job is no longer processing under this token (taken
                   over or cancelled); nothing is written;
        {-3}       the record vanished; the id was dropped from the in-flight set;
        {-92, why} the record cannot be read, or P:completed has the wrong type: the
                   job was moved from the in-flight set to quarantine;
        {-90, why} a key this call needs has the wrong type; {-91, why} NOPERM.

Writes: 0: 1 2 3 4 5 8 9 | -1: none | -3: 2 | -92: 2 6 7 | -90: none | -91: none

The steps are in lib/outcome.lua (complete_job), shared with finish_fetch.lua.
The output tail and the per-queue counters are best-effort: a log or stats key of
the wrong type is left alone (doctor reports it) and the job still completes. The
record is kept until the scheduler's prune.lua removes it, completed-ttl after it
ended, with its output and index entries.
]]
--- @include "time"
--- @include "outcome"

local now, nows = server_time()
return complete_job({job = KEYS[1], inflight = KEYS[2], completed = KEYS[3], log = KEYS[4],
  stats = KEYS[5], qzset = KEYS[6], qwhy = KEYS[7], index = KEYS[8], queues = KEYS[9]},
  {id = ARGV[1], worker = ARGV[2], lease = ARGV[3], chunk = ARGV[4], produced = ARGV[5],
   cap = ARGV[6], queue = ARGV[7], spawned_at = ARGV[8] or ''}, now, nows)
