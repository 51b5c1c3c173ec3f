"""RQ driver and worker: ``python rq_peer.py ACTION --url URL ...`` (see common.py)."""

from __future__ import annotations

from typing import Any

from common import emit, latency_loop, parser, read_handles, run_command, summarize, timed_enqueue
from redis import Redis
from rq import Queue
from rq.job import Job
from rq.worker import SimpleWorker, Worker

RESULT_TTL = 3600


def result_of(conn: Redis, job_id: str, timeout: float = 30) -> dict[str, Any]:
    job = Job.fetch(job_id, connection=conn)
    res = job.latest_result(timeout=int(timeout))  # XREAD BLOCK on the job's result stream
    if res is None or res.return_value is None:
        raise RuntimeError(f"no result for {job_id}: {res and res.exc_string}")
    value: dict[str, Any] = res.return_value
    return value


def main() -> None:
    args = parser().parse_args()
    conn = Redis.from_url(args.url)
    queue = Queue("default", connection=conn)
    if args.action == "worker":
        cls = SimpleWorker if args.variant == "simple" else Worker
        cls([queue], connection=conn).work(logging_level="WARNING")
    elif args.action == "enqueue":
        def bulk(n: int) -> list[str]:
            data = [Queue.prepare_data(run_command, (args.command,), result_ttl=RESULT_TTL)
                    for _ in range(n)]
            return [job.id for job in queue.enqueue_many(data)]
        timed_enqueue(args.n, args.mode, args.handles,
                      lambda: queue.enqueue(run_command, args.command, result_ttl=RESULT_TTL).id,
                      bulk, lambda i: (f"rq:results:{i}", i))
    elif args.action == "collect":
        emit(summarize(result_of(conn, i, 5) for i in read_handles(args.handles)))
    elif args.action == "latency":
        emit(latency_loop(args.samples,
                          lambda: queue.enqueue(run_command, args.command).id,
                          lambda i: result_of(conn, i)))


if __name__ == "__main__":
    main()
