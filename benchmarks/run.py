"""QueueCTL side by side with RQ, Dramatiq, Celery and arq, and the no-queue limits.

    .venv/bin/python benchmarks/run.py                    # full run (~15 min on 2 cores)
    .venv/bin/python benchmarks/run.py --quick            # smoke run, one repeat, small sizes
    .venv/bin/python benchmarks/run.py --only queuectl-2x4,dramatiq-2x4,limits
    .venv/bin/python benchmarks/run.py --write-results    # also rewrite benchmarks/results.md

Starts its own redis-server on a free port, installs each peer into its own venv under
benchmarks/.venvs/ (reused later), runs every system in turn and prints a markdown table;
the JSON and markdown land in benchmarks/out/. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root

from benchmarks.harness import limits, queuectl_only, report
from benchmarks.harness.infra import (
    BENCH,
    PEER_NAMES,
    BenchError,
    RedisServer,
    peer_versions,
    spread,
)
from benchmarks.harness.scenarios import Sizes, run_system
from benchmarks.harness.systems import SYSTEMS, QueueCtlSystem

EXTRAS = ("limits", "queuectl-only")
NAMES = (*SYSTEMS, *EXTRAS)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="QueueCTL vs RQ, Dramatiq, Celery and arq on one local Redis "
                    "(see benchmarks/README.md).")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: one repeat, small sizes (a minute or two)")
    p.add_argument("--only", default="", metavar="NAME,...",
                   help=f"run only these: {', '.join(NAMES)}")
    p.add_argument("--repeats", type=int, help="repeats per system (default 3, --quick 1)")
    p.add_argument("--out", type=Path, default=BENCH / "out",
                   help="where results.json and results.md go (default benchmarks/out)")
    p.add_argument("--write-results", action="store_true",
                   help="also write benchmarks/results.md (the committed latest full run)")
    p.add_argument("--note", default="", help="a line added under the header of results.md")
    args = p.parse_args(argv)
    only = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in only if n not in NAMES]
    if unknown:
        p.error(f"unknown name(s) for --only: {', '.join(unknown)}; known: {', '.join(NAMES)}")
    args.selected = only or list(NAMES)
    return args


def machine(server: RedisServer) -> dict[str, Any]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "python": platform.python_version(), "redis": server.version()}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def queuectl_figures(url: str, workdir: Path, sizes: Sizes) -> dict[str, Any]:
    system = QueueCtlSystem(url, workdir, 1)
    values: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    notes: dict[str, Any] = {}
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
             ("cli", lambda: queuectl_only.cli_startup(system)),
             ("promote", lambda: queuectl_only.promote_due(system, sizes.promote)),
             ("memory", lambda: queuectl_only.memory_per_job(system, sizes.memory))]
    for name, step in steps:
        log(f"  queuectl-only: {name}")
        try:
            for key, value in step().items():
                if isinstance(value, str):
                    notes[key] = value
                else:
                    values.setdefault(key, []).append(float(value))
        except (BenchError, OSError) as exc:
            errors[name] = str(exc)
    names = {"cli": ["cli_enqueue_ms", "cli_status_ms", "cli_python_ms", "cli_import_floor_ms"],
             "promote": ["promote_seconds", "promote_seconds_from_start",
                         "promote_longest_call_ms"],
             "memory": ["memory_pending_bytes", "memory_finished_bytes"]}
    per_key = {k: errors[step] for step, keys in names.items() if step in errors for k in keys}
    return {"figures": {k: spread(v) for k, v in values.items()}, "errors": per_key,
            "notes": notes}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = Sizes.quick() if args.quick else Sizes()
    if args.repeats:
        sizes.repeats = args.repeats
    started = time.monotonic()
    # QueueCTL runs from this checkout (an editable install): its byte code must be
    # current, as an installed wheel's is, or every CLI start-up timed would include
    # compiling the sources edited since (PYTHONDONTWRITEBYTECODE keeps Python from
    # caching them on its own).
    compileall.compile_dir(BENCH.parent / "services", quiet=1, workers=0)
    workdir = Path(tempfile.mkdtemp(prefix="queuectl-bench-"))
    server = RedisServer(workdir / "redis")
    doc: dict[str, Any] = {"meta": {}, "systems": []}
    try:
        peers = {p: peer_versions(p) for p in PEER_NAMES
                 if any(s.startswith(p) for s in args.selected)}
        log(f"redis-server {server.version()} at {server.url}; peers ready: {peers}")
        for name in args.selected:
            if name in SYSTEMS:
                log(f"{name}")
                doc["systems"].append(run_system(SYSTEMS[name](server.url, workdir), sizes, log))
        if "limits" in args.selected:
            log("limits: spawn and Redis round trips")
            doc["limits"] = limits.measure(server.url, sizes.spawn, sizes.repeats)
        if "queuectl-only" in args.selected:
            doc["queuectl"] = queuectl_figures(server.url, workdir, sizes)
        # The CLI's --file rate is a QueueCTL-only figure too; the table row reads it here.
        for row in doc["systems"]:
            if "enqueue_cli_file" in row["figures"] and row["name"] == "queuectl-1x8":
                doc.setdefault("queuectl", {"figures": {}, "errors": {}})
                doc["queuectl"]["figures"]["enqueue_cli_file"] = \
                    row["figures"]["enqueue_cli_file"]
        doc["meta"] = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(server), "peers": peers, "quick": args.quick,
            "sizes": vars(sizes), "duration_s": time.monotonic() - started,
            "command": "benchmarks/run.py " + " ".join(argv if argv is not None
                                                      else sys.argv[1:]),
            "note": args.note}
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    doc["ratios"] = report.ratios(doc)
    text = report.render(doc)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
    (args.out / "results.md").write_text(text)
    if args.write_results:
        (BENCH / "results.md").write_text(text)
        (BENCH / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
    log(f"done in {(time.monotonic() - started) / 60:.1f} min; wrote {args.out}/results.*")
    return 0


if __name__ == "__main__":
    sys.exit(main())
