"""Every script, fed every kind of garbage another client can plant, never half-applies.

For each script and a valid situation it is called in, the call is captured as the
Store makes it; then, one at a time, each key of the call is replaced by a key of
the wrong type, each field of each job record it reads by garbage, and each list,
set and zset gets a member that is not a job id. The script is then run and must:

* answer with a return code (never an error reply: Redis keeps the writes a script
  made before it raised);
* answer a code its header documents;
* change no key other than those its header's ``Writes:`` line allows for that code
  (a DUMP of every key under the prefix before and after).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
import redis

from queuectl.core.keys import KEY_TYPES, Keys
from queuectl.core.lua import script_names, script_source
from queuectl.core.models import JobSpec
from queuectl.core.policy import Policy
from queuectl.core.store import Fetched, Store

FIELDS = ["id", "command", "queue", "state", "attempts", "max_retries", "timeout", "run_at",
          "lease", "interrupted", "lost", "log_size", "worker", "exit_code", "created_at",
          "updated_at", "started_at", "finished_at", "trace_context", "env", "spawned_at"]
GARBAGE: list[str | bytes] = ["abc", "-1", "1.5", "", "9" * 40, b"\xff\xfe"]
BAD_MEMBER = "not an id!"

# run_at may be at most ten years ahead (JobSpec); a year ahead is "later" for any test.
IN_A_YEAR = datetime.now(UTC) + timedelta(days=365)


@dataclass
class Call:
    name: str
    keys: list[str]
    args: list[Any]


class Captured(Exception):  # noqa: N818 - control flow of the capture only
    def __init__(self, call: Call) -> None:
        super().__init__(call.name)
        self.call = call


class CapturingStore(Store):
    """A Store that, when ``capture`` names a script, records that call instead of running it."""

    capture: str | None = None

    def _run(self, name: str, keys: Any, args: Any, client: Any = None) -> Any:
        if name == self.capture:
            raise Captured(Call(name, list(keys), list(args)))
        return super()._run(name, keys, args, client)


def capture(store: CapturingStore, name: str, action: Callable[[], object]) -> Call:
    store.capture = name
    try:
        action()
    except Captured as got:
        return got.call
    finally:
        store.capture = None
    raise AssertionError(f"{name} was not called")


# -- the documented outcomes ------------------------------------------------------------------
@dataclass(frozen=True)
class Header:
    fixed: int  # KEYS[1..fixed] have fixed meanings; later ones are "rest"
    writes: dict[str, set[str]]  # code (or "*") -> allowed tokens


def header(name: str) -> Header:
    text = script_source(name).split("]]", 1)[0]
    fixed = max(int(n) for n in re.findall(r"^KEYS\[(\d+)\]\s", text, re.MULTILINE))
    line = re.search(r"^Writes:(.*)$", text, re.MULTILINE)
    assert line, f"{name}.lua has no Writes: line"
    writes = {}
    for part in line.group(1).split("|"):
        code, _, tokens = part.partition(":")
        writes[code.strip()] = set(tokens.split()) - {"none"}
    return Header(fixed, writes)


def allowed(head: Header, call: Call, code: str, keys: Keys) -> set[str]:
    tokens = head.writes.get(code, head.writes.get("*"))
    assert tokens is not None, f"{call.name} answered undocumented code {code}"
    out: set[str] = set()
    for token in tokens:
        if token == "rest":
            out.update(call.keys[head.fixed:])
        elif token in ("jobs", "logs", "indexes", "queues", "wakes"):
            prefix = {"jobs": keys.job_prefix, "logs": keys.log_prefix,
                      "indexes": keys.index_prefix, "queues": keys.queue_prefix,
                      "wakes": keys.wake_prefix}[token]
            out.add(prefix + "*")
        else:
            out.add(call.keys[int(token) - 1])
    return out


def code_of(reply: Any) -> str:
    first = reply[0] if isinstance(reply, list) and reply else reply
    return str(first) if isinstance(first, int) else "*"


# -- situations -------------------------------------------------------------------------------
@dataclass
class World:
    store: CapturingStore
    raw: redis.Redis

    @property
    def keys(self) -> Keys:
        return self.store.keys

    def job(self, job_id: str, **kw: Any) -> JobSpec:
        spec = JobSpec(id=job_id, command="true", **kw)
        self.store.enqueue(spec)
        return spec

    def lease(self, job_id: str, worker: str = "w1", **kw: Any) -> Fetched:
        spec = self.job(job_id, **kw)
        got = self.store.fetch(worker, [spec.queue])
        assert got is not None and got.id == job_id
        return got

    def dead(self, job_id: str) -> None:
        self.store.fail(self.lease(job_id, max_retries=0), "w1", b"", 0, 1, "exit code 1")

    def failed(self, job_id: str) -> None:
        self.store.fail(self.lease(job_id, max_retries=3), "w1", b"", 0, 1, "exit code 1")
        self.raw.zadd(self.keys.retry_queue, {job_id: 0})


Situation = Callable[[World], Call]
SITUATIONS: dict[str, Situation] = {}


def situation(name: str) -> Callable[[Situation], Situation]:
    def register(fn: Situation) -> Situation:
        SITUATIONS[name] = fn
        return fn
    return register


@situation("enqueue new")
def _(w: World) -> Call:
    return capture(w.store, "enqueue", lambda: w.store.enqueue(JobSpec(id="j", command="x")))


@situation("enqueue delayed")
def _(w: World) -> Call:
    spec = JobSpec.model_validate({"id": "j", "command": "x", "run_at": IN_A_YEAR})
    return capture(w.store, "enqueue", lambda: w.store.enqueue(spec))


@situation("enqueue replace")
def _(w: World) -> Call:
    w.store.complete(w.lease("j"), "w1", b"out", 3)
    spec = JobSpec(id="j", command="x")
    return capture(w.store, "enqueue", lambda: w.store.enqueue(spec, replace=True))


@situation("enqueue_batch new")
def _(w: World) -> Call:
    specs = [JobSpec(id="a", command="x"), JobSpec(id="b", command="y", queue="q2"),
             JobSpec.model_validate({"id": "c", "command": "z", "run_at": IN_A_YEAR})]
    return capture(w.store, "enqueue_batch", lambda: w.store.enqueue_many(specs))


@situation("enqueue_batch replace")
def _(w: World) -> Call:
    w.store.complete(w.lease("j", queue="q2"), "w1", b"out", 3)
    w.dead("d")
    specs = [JobSpec(id="j", command="x"), JobSpec(id="d", command="y"),
             JobSpec(id="n", command="z")]
    return capture(w.store, "enqueue_batch",
                   lambda: w.store.enqueue_many(specs, replace=True))


@situation("fetch")
def _(w: World) -> Call:
    w.job("j", queue="q2")
    w.job("k", queue="q2")
    return capture(w.store, "fetch", lambda: w.store.fetch("w1", ["q1", "q2"]))


@situation("complete")
def _(w: World) -> Call:
    job = w.lease("j")
    return capture(w.store, "complete", lambda: w.store.complete(job, "w1", b"out", 3))


@situation("fail with retries left")
def _(w: World) -> Call:
    job = w.lease("j", max_retries=2)
    return capture(w.store, "fail", lambda: w.store.fail(job, "w1", b"err", 3, 1, "exit 1"))


@situation("fail into the DLQ")
def _(w: World) -> Call:
    job = w.lease("j", max_retries=0)
    return capture(w.store, "fail", lambda: w.store.fail(job, "w1", b"err", 3, 1, "exit 1"))


@situation("finish_fetch complete, then the next job")
def _(w: World) -> Call:
    job = w.lease("j", queue="q2")
    w.job("k", queue="q2")
    return capture(w.store, "finish_fetch", lambda: w.store.finish_fetch(
        job, "w1", b"out", 3, job.fetched_at, None, ["q1", "q2"]))


def _fail_then_next(w: World, max_retries: int) -> Call:
    job = w.lease("j", max_retries=max_retries)
    w.job("k")
    return capture(w.store, "finish_fetch", lambda: w.store.finish_fetch(
        job, "w1", b"err", 3, None, (1, "exit 1"), ["default"]))


SITUATIONS["finish_fetch fail with retries left, then the next job"] = partial(
    _fail_then_next, max_retries=2)
SITUATIONS["finish_fetch fail into the DLQ, then the next job"] = partial(
    _fail_then_next, max_retries=0)


@situation("finish_fetch complete while draining (no fetch)")
def _(w: World) -> Call:
    job = w.lease("j")
    w.job("k")
    return capture(w.store, "finish_fetch", lambda: w.store.finish_fetch(
        job, "w1", b"out", 3, None, None, []))


@situation("log_append")
def _(w: World) -> Call:
    job = w.lease("j")
    return capture(w.store, "log_append", lambda: w.store.log_append(job, "w1", b"more", 4))


@situation("release")
def _(w: World) -> Call:
    job = w.lease("j")
    return capture(w.store, "release", lambda: w.store.release(job, "w1"))


@situation("promote")
def _(w: World) -> Call:
    w.failed("j")
    spec = JobSpec.model_validate({"id": "d", "command": "x", "run_at": IN_A_YEAR})
    w.store.enqueue(spec)
    w.raw.zadd(w.keys.delayed, {"d": 0})
    return capture(w.store, "promote", lambda: w.store.promote_due(100))


@situation("reap")
def _(w: World) -> Call:
    w.lease("j", worker="gone")
    w.lease("k", worker="gone")
    w.raw.hset(w.keys.job("k"), "lost", "5")  # buried: lost >= max-lost
    w.raw.zadd(w.keys.workers, {"gone": 0})
    return capture(w.store, "reap", lambda: w.store.reap_worker("gone", 1.0))


@situation("dlq_retry")
def _(w: World) -> Call:
    w.dead("j")
    return capture(w.store, "dlq_retry", lambda: w.store.dlq_retry(["j"]))


@situation("cancel pending")
def _(w: World) -> Call:
    w.job("j")
    return capture(w.store, "cancel", lambda: w.store.cancel("j"))


@situation("cancel processing")
def _(w: World) -> Call:
    w.lease("j")
    return capture(w.store, "cancel", lambda: w.store.cancel("j"))


@situation("cancel failed")
def _(w: World) -> Call:
    w.failed("j")
    return capture(w.store, "cancel", lambda: w.store.cancel("j"))


@situation("purge")
def _(w: World) -> Call:
    w.dead("j")
    return capture(w.store, "purge", w.store.purge_dlq)


@situation("heartbeat")
def _(w: World) -> Call:
    k = w.keys
    w.store.heartbeat(k.worker("w1"), k.workers, "w1", 10, "me", {"a": "1"})
    return capture(w.store, "heartbeat",
                   lambda: w.store.heartbeat(k.worker("w1"), k.workers, "w1", 10, "me", {}))


@situation("unregister")
def _(w: World) -> Call:
    k = w.keys
    w.store.heartbeat(k.worker("w1"), k.workers, "w1", 10, "me", {"a": "1"})
    return capture(w.store, "unregister", lambda: w.store.unregister_worker("w1", "me"))


def _quarantined(w: World) -> None:
    w.job("j")
    w.raw.hset(w.keys.job("j"), "attempts", "abc")
    assert w.store.fetch("w1", ["default"]) is None
    w.raw.hset(w.keys.job("j"), "attempts", "0")


@situation("quarantine_retry")
def _(w: World) -> Call:
    _quarantined(w)
    return capture(w.store, "quarantine_retry", lambda: w.store.quarantine_retry(["j"]))


@situation("quarantine_purge")
def _(w: World) -> Call:
    _quarantined(w)
    return capture(w.store, "quarantine_purge", lambda: w.store.quarantine_purge(["j"]))


@situation("prune")
def _(w: World) -> Call:
    w.store.complete(w.lease("j"), "w1", b"out", 3)
    w.raw.zadd(w.keys.completed, {"j": 1, "gone": 1})  # ended long ago
    w.store.enqueue(JobSpec(id="c", command="true", queue="q"))
    w.store.cancel("c")
    w.raw.zadd(w.keys.cancelled, {"c": 1})
    return capture(w.store, "prune", w.store.prune)


@situation("prune_dead")
def _(w: World) -> Call:
    w.dead("j")
    w.dead("k")
    w.raw.rpush(w.keys.dead_letter, "gone")
    w.raw.hset(w.keys.config, "dead-max", "1")
    return capture(w.store, "prune_dead", w.store.prune_dead)


@situation("prune_queues")
def _(w: World) -> Call:
    w.job("j", queue="busy")
    w.raw.sadd(w.keys.queues, "idle")
    return capture(w.store, "prune_queues", lambda: w.store.prune_queues(["busy", "idle"]))


@situation("gauges_lease renew")
def _(w: World) -> Call:
    w.store.gauges_lease("s1/a", 5.0)
    return capture(w.store, "gauges_lease", lambda: w.store.gauges_lease("s1/a", 5.0))


@situation("repair")
def _(w: World) -> Call:
    w.job("j")
    w.raw.delete(w.keys.queue("default"))  # stranded: pending in no queue
    k = w.keys
    places = {"queue:default": k.queue("default"), "wake:default": k.wake("default")}
    return capture(w.store, "repair", lambda: w.store.repair("j", places, fix=True))


def test_every_script_has_a_situation() -> None:
    covered = {name.split()[0] for name in SITUATIONS}
    assert covered == set(script_names())


# -- corruptions --------------------------------------------------------------------------------
def wrong_type(r: redis.Redis, key: str, current: str) -> None:
    r.delete(key)
    if current == "string":
        r.rpush(key, "garbage")
    else:
        r.set(key, "garbage")


def corruptions(call: Call, keys: Keys, r: redis.Redis) -> Iterator[tuple[str, Callable[[], Any]]]:
    """(description, plant) pairs for one captured call."""
    for key in dict.fromkeys(call.keys):
        kind = keys.classify(key)
        if kind is None:
            continue  # the job-hash prefix, not a key
        want = KEY_TYPES[kind[0]]
        yield f"{key} of the wrong type", partial(wrong_type, r, key, want)
        if kind[0] == "job":
            for field in FIELDS:
                yield f"{key} without {field}", partial(r.hdel, key, field)
                for value in GARBAGE:
                    yield f"{key} {field}={value!r}", partial(r.hset, key, field, value)
        elif want == "list":
            yield f"{key} holding a bad id", partial(r.lpush, key, BAD_MEMBER)
        elif want == "zset":
            yield f"{key} holding a bad id", partial(r.zadd, key, {BAD_MEMBER: 0})
        elif want == "set":
            yield f"{key} holding a bad id", partial(r.sadd, key, BAD_MEMBER)


def dump(r: redis.Redis, prefix: str) -> dict[bytes, bytes | None]:
    names = sorted(r.scan_iter(match=f"{prefix}:*", count=1000))
    pipe = r.pipeline(transaction=False)
    for name in names:
        pipe.dump(name)
    return dict(zip(names, pipe.execute(), strict=True))


def changed(before: dict[bytes, bytes | None], after: dict[bytes, bytes | None]) -> set[str]:
    return {k.decode() for k in set(before) | set(after) if before.get(k) != after.get(k)}


def outside(keys: set[str], allowed_keys: set[str]) -> set[str]:
    prefixes = tuple(a[:-1] for a in allowed_keys if a.endswith("*"))
    return {k for k in keys if k not in allowed_keys and not k.startswith(prefixes)}


def make_world(client: redis.Redis) -> World:
    keys = Keys(f"qc{uuid.uuid4().hex[:10]}")
    store = CapturingStore(client, keys, Policy(max_lost=3))
    return World(store, redis.Redis(connection_pool=client.connection_pool,
                                    decode_responses=False))


def restore(r: redis.Redis, prefix: str, snapshot: dict[bytes, tuple[bytes, int]]) -> None:
    """Put every key under ``prefix`` back as ``snapshot`` holds it (value and TTL)."""
    pipe = r.pipeline(transaction=False)
    for name in r.scan_iter(match=f"{prefix}:*", count=1000):
        pipe.delete(name)
    for name, (value, ttl) in snapshot.items():
        pipe.restore(name, max(ttl, 0), value)
    pipe.execute()


def snapshot_of(r: redis.Redis, prefix: str) -> dict[bytes, tuple[bytes, int]]:
    names = sorted(r.scan_iter(match=f"{prefix}:*", count=1000))
    pipe = r.pipeline(transaction=False)
    for name in names:
        pipe.dump(name)
        pipe.pttl(name)
    got = pipe.execute()
    return {name: (got[2 * i], got[2 * i + 1]) for i, name in enumerate(names)}


@pytest.mark.parametrize("name", sorted(SITUATIONS))
def test_garbage_never_half_applies(name: str, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, encoding_errors="surrogateescape")
    failures: list[str] = []
    runs = 0
    try:
        world = make_world(client)
        call = SITUATIONS[name](world)
        head = header(call.name)
        # Every plant starts from the same valid state: the situation's keys as they
        # were when the call was captured, restored before each plant.
        valid = snapshot_of(client, world.keys.prefix)
        plants = list(corruptions(call, world.keys, client))
        for what, plant in plants:
            restore(client, world.keys.prefix, valid)
            plant()
            before = dump(client, world.keys.prefix)
            try:
                reply = world.store._script(call.name)(keys=call.keys, args=call.args)
            except redis.ResponseError as exc:
                failures.append(f"{what}: error reply {exc}")
                continue
            runs += 1
            code = code_of(reply)
            try:
                ok = allowed(head, call, code, world.keys)
            except AssertionError as exc:
                failures.append(f"{what}: {exc}")
                continue
            stray = outside(changed(before, dump(client, world.keys.prefix)), ok)
            if stray:
                failures.append(f"{what}: code {code} also changed {sorted(stray)}")
    finally:
        client.close()
    assert not failures, f"{len(failures)} of {len(plants)} plants:\n" + "\n".join(failures[:40])
    assert runs == len(plants)
