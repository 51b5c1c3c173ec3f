"""The benchmark's report writer and command line (the benchmark itself is not a test)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks.harness import limits, report
from benchmarks.harness.infra import BenchError, CpuSampler, TreeSampler
from benchmarks.harness.report import DASH, TIMES
from benchmarks.harness.systems import Timings

ROOT = Path(__file__).resolve().parents[2]


def fig(median: float, lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    return {"median": median, "min": lo if lo is not None else median,
            "max": hi if hi is not None else median, "n": 3}


def system(name: str, label: str, family: str, model: str, figures: dict[str, Any],
           errors: dict[str, str] | None = None) -> dict[str, Any]:
    return {"name": name, "label": label, "family": family, "model": model,
            "figures": figures, "errors": errors or {},
            "notes": {"start_field": "spawned_at" if family == "QueueCTL" else None}}


DOC: dict[str, Any] = {
    "meta": {"date": "2026-11-30 06:00 UTC", "duration_s": 600.0, "command": "benchmarks/run.py",
             "sizes": {"repeats": 3, "promote": 100_000},
             "machine": {"nproc": 2, "cpu": "Test CPU", "kernel": "6.1", "python": "3.11.7",
                         "redis": "7.0.15"},
             "peers": {"dramatiq": "dramatiq==2.2.1"}, "note": ""},
    "systems": [
        system("queuectl-2x4", "QueueCTL", "QueueCTL", "2x4",
               {"drain": fig(1500, 1400, 1600), "drain_cpu_ms_per_job": fig(1.3),
                "drain_busy_pct": fig(97.5), "worker_cpu_us_per_job": fig(450),
                "latency_p50": fig(0.8),
                "commands_per_job": fig(26), "rss_mb": fig(100), "drain_live": fig(900),
                "live_from_enqueue": fig(800), "enqueue_live": fig(1000)},
               {"sleep_pct_ideal": "timed out after 60s waiting for 320 jobs to finish"}),
        system("dramatiq-2x4", "Dramatiq", "Dramatiq", "2x4",
               {"drain": fig(1000), "live_from_enqueue": fig(640),
                "drain_cpu_ms_per_job": fig(1.9), "worker_cpu_us_per_job": fig(900)}),
    ],
    "limits": {"figures": {"spawn_piped_2x4": fig(2000), "spawn_piped_2x4_cpu_ms": fig(1.0),
                           "spawn_piped_2x4_own_us": fig(150)}},
    "queuectl": {"figures": {"promote_seconds": fig(1.5)}, "errors": {}},
}


def test_the_table_shows_medians_with_their_range_and_why_a_figure_failed() -> None:
    text = report.render({**DOC, "ratios": report.ratios(DOC)})
    row = next(line for line in text.splitlines() if line.startswith(f"| QueueCTL | 2{TIMES}4"))
    assert f"1,500 (1,400{DASH}1,600)" in row
    assert f"| 900 (900{DASH}900) | 800 (800{DASH}800) | 1,000 (1,000{DASH}1,000) |" in row
    assert f"| 1.30 (1.30{DASH}1.30) | 98 (98{DASH}98) |" in row
    assert f"| … machine CPU ms per spawn, 2 {TIMES} 4 | 1.00 (1.00{DASH}1.00) |" in text
    assert "enqueue one/s during the live drain" in text
    assert "failed: timed out after 60s waiting for 320 jobs to finish" in row
    assert "Test CPU" in text and "dramatiq==2.2.1" in text
    assert "`spawned_at` (queuectl-2x4)" in text
    assert ("| 100,000 due jobs promoted: s from the first promotion to empty | "
            f"1.50 (1.50{DASH}1.50) |") in text


def test_ratios_are_computed_from_the_medians_against_the_targets() -> None:
    by_what = {r["what"]: r for r in report.ratios(DOC)}
    vs_dramatiq = by_what["QueueCTL 2x4 drain / Dramatiq 2x4 drain"]
    assert vs_dramatiq["value"] == 1.5 and vs_dramatiq["met"] is True
    vs_spawn = by_what["QueueCTL 2x4 drain / no-queue spawn with pipes 2x4"]
    assert vs_spawn["value"] == 0.75 and vs_spawn["met"] is False
    assert by_what["QueueCTL 2x4 Redis commands per job"]["met"] is False
    assert by_what["QueueCTL 2x4 worker RSS per process"]["value"] == 50
    assert by_what["QueueCTL 1x8 drain / Dramatiq 2x4 drain"]["value"] is None
    assert by_what["QueueCTL 2x4 live drain / its enqueue rate meanwhile"]["value"] == 0.9
    assert by_what["Dramatiq 2x4 live drain / its enqueue rate meanwhile"]["value"] is None
    assert by_what["QueueCTL 2x4 live, from the first enqueue / Dramatiq 2x4's"]["value"] == 1.25
    assert by_what["QueueCTL 2x4 machine CPU per job / no-queue spawn's 2x4"]["value"] == 1.3
    over = by_what["QueueCTL 2x4 CPU per job above the no-queue spawn / Dramatiq 2x4's"]
    assert abs(over["value"] - 0.3 / 0.9) < 1e-9
    assert by_what["Dramatiq 2x4 machine CPU per job / no-queue spawn's 2x4"]["value"] == 1.9
    assert by_what["QueueCTL 2x4 worker CPU per job / Dramatiq 2x4's"]["value"] == 0.5
    assert by_what["QueueCTL 2x4 worker CPU per job / the no-queue spawners' own 2x4"][
        "value"] == 3
    assert by_what["QueueCTL 1x8 machine CPU per job / no-queue spawn's 1x8"]["value"] is None
    rendered = report.render_ratio(vs_spawn)
    assert rendered == ("| QueueCTL 2x4 drain / no-queue spawn with pipes 2x4 | "
                        f"0.75{TIMES} | ≥ 0.85 | **no** |")


def test_run_py_help_and_a_bad_name_for_only() -> None:
    run = [sys.executable, str(ROOT / "benchmarks" / "run.py")]
    done = subprocess.run([*run, "--help"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0 and "--quick" in done.stdout and "--only" in done.stdout
    bad = subprocess.run([*run, "--only", "nosuch"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert bad.returncode == 2
    assert "unknown name(s) for --only: nosuch" in bad.stderr.splitlines()[-1]


def test_the_cpu_of_a_window_is_read_between_the_samples_around_it() -> None:
    sampler = CpuSampler()
    sampler.stop()
    # (wall time, busy CPU s, all CPU s): 2 CPUs, half busy, then fully busy.
    sampler.samples = [(100.0, 10.0, 20.0), (101.0, 11.0, 22.0), (102.0, 13.0, 24.0)]
    busy, share = sampler.between(100.5, 101.5)
    assert abs(busy - 1.5) < 1e-9 and abs(share - 0.75) < 1e-9
    with pytest.raises(BenchError, match="no sample around"):
        sampler.between(99.0, 101.0)


def test_a_process_tree_counts_the_cpu_its_processes_spend() -> None:
    # This test's own process is the tree: it spends 0.3 s of CPU between the samples.
    before = time.process_time()
    sampler = TreeSampler([os.getpid()])
    while time.process_time() < before + 0.3:
        pass
    sampler.stop()
    peak = sampler.rss_peak()
    after = time.process_time()
    assert peak > 0
    spent = sampler.cpu_between(sampler.cpu[0][0], sampler.cpu[-1][0])
    assert 0.28 <= spent <= after - before + 0.02  # clock ticks are 10 ms


def test_a_sampler_whose_thread_failed_says_so_instead_of_reading_across_the_gap() -> None:
    class Failing(CpuSampler):
        def _sample(self) -> None:
            if self.samples:
                raise OSError("no /proc")
            super()._sample()

    sampler = Failing()
    sampler._thread.join(timeout=30)  # its second sample, 0.05 s in, ends it
    assert not sampler._thread.is_alive()
    sampler.stop()
    with pytest.raises(BenchError, match="Failing failed: OSError: no /proc"):
        sampler.between(0.0, 1.0)


def test_a_sampler_whose_last_sample_fails_stops_quietly_and_its_reads_say_so() -> None:
    # stop() runs in a finally beside the other sampler's: it must not raise past it.
    class FailsLast(CpuSampler):
        def _sample(self) -> None:
            if self._stop.is_set():
                raise OSError("no /proc")
            super()._sample()

    sampler = FailsLast()
    sampler.stop()
    with pytest.raises(BenchError, match="FailsLast failed: OSError: no /proc"):
        sampler.between(0.0, 1.0)


def test_the_steady_window_leaves_out_the_first_fifth_and_the_last_tenth() -> None:
    finishes = [float(i) for i in range(100)]
    timings = Timings(starts=finishes, finishes=list(reversed(finishes)), exit_codes={"0": 100},
                      missing=0)
    assert timings.steady() == (20.0, 90.0, 70)
    with pytest.raises(BenchError, match="too few jobs"):
        Timings(starts=[0.0] * 12, finishes=[1.0] * 12, exit_codes={}, missing=0).steady()


def test_a_failed_no_queue_spawn_is_an_error_not_a_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused() -> None:
        raise OSError("fork refused")

    monkeypatch.setitem(limits.SPAWNERS, "piped", refused)
    for processes in (1, 2):  # in this process's threads, and in forked processes
        with pytest.raises(BenchError, match="a spawn failed: OSError: fork refused"):
            limits.spawn_rate("piped", processes, 2, 4)


@pytest.mark.timeout(30)
def test_a_spawning_process_that_dies_is_an_error_not_a_hang(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def dies() -> None:
        os._exit(3)  # the whole forked spawner ends, with nothing sent

    monkeypatch.setitem(limits.SPAWNERS, "piped", dies)
    with pytest.raises(BenchError, match="a spawning process died"):
        limits.spawn_rate("piped", 2, 2, 4)
