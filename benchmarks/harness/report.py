"""The results document (JSON) rendered as markdown: the side-by-side table, the no-queue
limits, QueueCTL's own figures and the ratios the issue's targets are stated in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Doc = dict[str, Any]
TIMES, DASH = "\u00d7", "\u2013"  # the markdown's typography

# (figure key, column title, digits)
COLUMNS = [
    ("enqueue_one", "enqueue one/s", 0),
    ("enqueue_bulk", "bulk enqueue/s", 0),
    ("drain", "drain jobs/s (pre-enqueued)", 0),
    ("drain_cpu_ms_per_job", "machine CPU ms/job (drain)", 2),
    ("drain_busy_pct", "machine busy % (drain)", 0),
    ("drain_live", "drain jobs/s (live)", 0),
    ("live_from_enqueue", "live, jobs/s from the first enqueue", 0),
    ("enqueue_live", "enqueue one/s during the live drain", 0),
    ("sleep_pct_ideal", "`sleep 0.05` % of ideal", 1),
    ("latency_p50", "start latency p50 ms", 2),
    ("latency_p95", "p95 ms", 2),
    ("commands_per_job", "Redis cmds/job", 1),
    ("redis_cpu_us_per_job", "Redis CPU µs/job", 0),
    ("worker_cpu_us_per_job", "worker CPU µs/job (drain, its own processes)", 0),
    ("rss_mb", "worker RSS MB (sum, peak)", 0),
]


def num(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


def cell(fig: Doc | None, digits: int, error: str | None = None) -> str:
    if fig is None:
        return f"failed: {error}" if error else "—"
    text = num(fig["median"], digits)
    if fig["n"] > 1:
        text += f" ({num(fig['min'], digits)}{DASH}{num(fig['max'], digits)})"
    return text


def median(doc: Doc, system: str, key: str) -> float | None:
    for row in doc.get("systems", []):
        if row["name"] == system and key in row["figures"]:
            value: float = row["figures"][key]["median"]
            return value
    return None


def figure(section: Doc | None, key: str) -> float | None:
    if not section or key not in section.get("figures", {}):
        return None
    value: float = section["figures"][key]["median"]
    return value


def ratios(doc: Doc) -> list[Doc]:
    """Each ratio the issue asks for, from the medians: what, value, target, met."""
    limits, qc = doc.get("limits"), doc.get("queuectl")
    out: list[Doc] = []

    def add(what: str, value: float | None, target: str, met: Callable[[float], bool],
            unit: str = TIMES, digits: int = 2) -> None:
        out.append({"what": what, "value": value, "target": target, "unit": unit,
                    "digits": digits, "met": None if value is None else met(value)})

    def div(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else a / b

    dramatiq = median(doc, "dramatiq-2x4", "drain")
    for model in ("1x8", "2x4"):
        name = f"queuectl-{model}"
        drain = median(doc, name, "drain")
        add(f"QueueCTL {model} drain / Dramatiq 2x4 drain", div(drain, dramatiq), "≥ 1.5",
            lambda v: v >= 1.5)
        add(f"QueueCTL {model} drain / no-queue spawn with pipes {model}",
            div(drain, figure(limits, f"spawn_piped_{model}")), "≥ 0.85", lambda v: v >= 0.85)
        add(f"QueueCTL {model} drain / posix_spawn {model}",
            div(drain, figure(limits, f"spawn_posix_spawn_{model}")), "—", lambda v: True)
        add(f"QueueCTL {model} live drain / pre-enqueued drain",
            div(median(doc, name, "drain_live"), drain), "—", lambda v: True)
        add(f"QueueCTL {model} live drain / its enqueue rate meanwhile",
            div(median(doc, name, "drain_live"), median(doc, name, "enqueue_live")), "—",
            lambda v: True)
        add(f"QueueCTL {model} live, from the first enqueue / Dramatiq 2x4's",
            div(median(doc, name, "live_from_enqueue"),
                median(doc, "dramatiq-2x4", "live_from_enqueue")), "—", lambda v: True)
    # CPU per job: on a machine the drain keeps busy, the rate is its CPU divided by this.
    # What a queue costs above the spawn itself is its own work per job.
    def minus(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a - b

    nq_cpu = {m: figure(limits, f"spawn_piped_{m}_cpu_ms") for m in ("1x8", "2x4")}
    dr_cpu = median(doc, "dramatiq-2x4", "drain_cpu_ms_per_job")
    dr_over = minus(dr_cpu, nq_cpu["2x4"])
    for model in ("1x8", "2x4"):
        cpu = median(doc, f"queuectl-{model}", "drain_cpu_ms_per_job")
        add(f"QueueCTL {model} machine CPU per job / no-queue spawn's {model}",
            div(cpu, nq_cpu[model]), "—", lambda v: True)
        over = minus(cpu, nq_cpu[model])
        add(f"QueueCTL {model} CPU per job above the no-queue spawn / Dramatiq 2x4's",
            div(over, dr_over), "—", lambda v: True)
        add(f"QueueCTL {model} worker CPU per job / the no-queue spawners' own {model}",
            div(median(doc, f"queuectl-{model}", "worker_cpu_us_per_job"),
                figure(limits, f"spawn_piped_{model}_own_us")), "—", lambda v: True)
        add(f"QueueCTL {model} worker CPU per job / Dramatiq 2x4's",
            div(median(doc, f"queuectl-{model}", "worker_cpu_us_per_job"),
                median(doc, "dramatiq-2x4", "worker_cpu_us_per_job")), "—", lambda v: True)
    add("Dramatiq 2x4 machine CPU per job / no-queue spawn's 2x4", div(dr_cpu, nq_cpu["2x4"]),
        "—", lambda v: True)
    add("Dramatiq 2x4 live drain / its enqueue rate meanwhile",
        div(median(doc, "dramatiq-2x4", "drain_live"),
            median(doc, "dramatiq-2x4", "enqueue_live")), "—", lambda v: True)
    nocg = median(doc, "queuectl-2x4-nocg", "drain")
    add("QueueCTL 2x4, job cgroups off, drain / Dramatiq 2x4 drain", div(nocg, dramatiq),
        "—", lambda v: True)
    add("QueueCTL 2x4, job cgroups off, drain / no-queue spawn with pipes 2x4",
        div(nocg, figure(limits, "spawn_piped_2x4")), "—", lambda v: True)
    add("QueueCTL 2x4, job cgroups off, `sleep 0.05` % of ideal (160/s)",
        median(doc, "queuectl-2x4-nocg", "sleep_pct_ideal"), "—", lambda v: True, "%", 1)
    add("no-queue `sh -c 'sleep 0.05'` with pipes, 1x8, % of ideal (160/s)",
        figure(limits, "sleep_pct_ideal_1x8"), "—", lambda v: True, "%", 1)
    for model in ("1x8", "2x4"):
        name = f"queuectl-{model}"
        add(f"QueueCTL {model} `sleep 0.05` % of ideal (160/s)",
            median(doc, name, "sleep_pct_ideal"), "≥ 95 %", lambda v: v >= 95, "%", 1)
        add(f"QueueCTL {model} `sleep 0.05` / no-queue `sleep 0.05` 1x8",
            div(median(doc, name, "sleep_pct_ideal"), figure(limits, "sleep_pct_ideal_1x8")),
            "—", lambda v: True)
        add(f"QueueCTL {model} Redis commands per job", median(doc, name, "commands_per_job"),
            "≤ 8", lambda v: v <= 8, "", 1)
        add(f"QueueCTL {model} start latency p50", median(doc, name, "latency_p50"),
            "< 1 ms", lambda v: v < 1, " ms")
        add(f"QueueCTL {model} start latency p95", median(doc, name, "latency_p95"),
            "< 3 ms", lambda v: v < 3, " ms")
        rss = median(doc, name, "rss_mb")
        add(f"QueueCTL {model} worker RSS per process", div(rss, int(model[0])), "< 60 MB",
            lambda v: v < 60, " MB", 0)
    add("QueueCTL `enqueue --file` jobs/s", median(doc, "queuectl-1x8", "enqueue_cli_file"),
        "≥ 60,000", lambda v: v >= 60000, "/s", 0)
    add("QueueCTL bulk enqueue (`enqueue_many`) / Dramatiq bulk",
        div(median(doc, "queuectl-1x8", "enqueue_bulk"),
            median(doc, "dramatiq-2x4", "enqueue_bulk")), "—", lambda v: True)
    promote = doc.get("meta", {}).get("sizes", {}).get("promote", 100_000)
    add(f"{promote:,} due jobs promoted", figure(qc, "promote_seconds"), "< 2 s",
        lambda v: v < 2, " s")
    add("longest single Redis call while promoting", figure(qc, "promote_longest_call_ms"),
        "< 5 ms", lambda v: v < 5, " ms")
    for key, what in (("cli_enqueue_ms", "enqueue"), ("cli_status_ms", "status")):
        add(f"CLI start-up `queuectl {what}`", figure(qc, key), "< 120 ms",
            lambda v: v < 120, " ms", 0)
        add(f"CLI start-up `queuectl {what}` / importing its libraries",
            div(figure(qc, key), figure(qc, "cli_import_floor_ms")), "—", lambda v: True)
    return out


def render_ratio(r: Doc) -> str:
    if r["value"] is None:
        value = "not measured"
    elif r["unit"] == TIMES:
        value = f"{r['value']:.{r['digits']}f}{TIMES}"
    else:
        value = f"{num(r['value'], r['digits'])}{r['unit']}"
    met = {True: "yes", False: "**no**", None: "—"}[r["met"]] if r["target"] != "—" else ""
    return f"| {r['what']} | {value} | {r['target']} | {met} |"


def systems_table(doc: Doc) -> list[str]:
    head = f"| system | processes {TIMES} threads | " + " | ".join(t for _, t, _ in COLUMNS) + " |"
    lines = [head, "|" + " --- |" * (len(COLUMNS) + 2)]
    for row in doc.get("systems", []):
        errs = row.get("errors", {})
        cells = [cell(row["figures"].get(k), d, errs.get(k) or errs.get("all"))
                 for k, _, d in COLUMNS]
        model = row["model"].replace("x", TIMES)
        lines.append(f"| {row['label']} | {model} | " + " | ".join(cells) + " |")
    return lines


LIMIT_ROWS = [
    ("spawn_piped_1x8", f"spawn `sh -c true` with pipes, 1 process {TIMES} 8 threads", 0),
    ("spawn_piped_2x4", f"spawn `sh -c true` with pipes, 2 processes {TIMES} 4 threads", 0),
    ("spawn_piped_1x8_cpu_ms", f"… machine CPU ms per spawn, 1 {TIMES} 8", 2),
    ("spawn_piped_2x4_cpu_ms", f"… machine CPU ms per spawn, 2 {TIMES} 4", 2),
    ("spawn_piped_1x8_own_us", f"… the spawning processes' own CPU µs per spawn, 1 {TIMES} 8",
     0),
    ("spawn_piped_2x4_own_us", f"… the spawning processes' own CPU µs per spawn, 2 {TIMES} 4",
     0),
    ("spawn_posix_spawn_1x8", f"`posix_spawn` `sh -c true`, no pipes, 1 {TIMES} 8", 0),
    ("spawn_posix_spawn_2x4", f"`posix_spawn` `sh -c true`, no pipes, 2 {TIMES} 4", 0),
    ("sleep_pct_ideal_1x8", f"`sh -c 'sleep 0.05'` with pipes, 1 {TIMES} 8, % of ideal (160/s)",
     1),
    ("redis_ping", "Redis round trips (PING, one client)", 0),
]

QUEUECTL_ROWS = [
    ("enqueue_cli_file", "`queuectl enqueue --file` jobs/s (wall clock, start-up included)", 0),
    ("cli_enqueue_ms", "`queuectl enqueue -- true` wall time, ms (median of 10)", 0),
    ("cli_status_ms", "`queuectl status` wall time, ms (median of 10)", 0),
    ("cli_python_ms", "`python -c pass` wall time, ms (median of 10)", 0),
    ("cli_import_floor_ms", "`python -c 'import typer.main, pydantic_settings, redis'` wall "
     "time, ms (median of 10): the libraries every command loads", 0),
    ("promote_seconds", "{promote:,} due jobs promoted: s from the first promotion to empty", 2),
    ("promote_seconds_from_start", "… s from the scheduler's process start to empty", 2),
    ("promote_longest_call_ms", "… longest single Redis call (SLOWLOG), ms", 2),
    ("memory_pending_bytes", "Redis memory per pending job, bytes", 0),
    ("memory_finished_bytes", "Redis memory per finished job, bytes", 0),
]


def rows_table(section: Doc | None, rows: list[tuple[str, str, int]],
               sizes: Doc) -> list[str]:
    lines = [f"| figure | median (min{DASH}max) |", "| --- | --- |"]
    figs = (section or {}).get("figures", {})
    errs = (section or {}).get("errors", {})
    for key, title, digits in rows:
        lines.append(f"| {title.format(**sizes)} | "
                     f"{cell(figs.get(key), digits, errs.get(key))} |")
    return lines


def render(doc: Doc) -> str:
    meta = doc["meta"]
    m, sizes = meta["machine"], meta["sizes"]
    out = [
        "# Benchmark results",
        "",
        f"Generated by `{meta['command']}` on {meta['date']} in {meta['duration_s'] / 60:.1f} "
        "min. Medians of "
        f"{meta['sizes']['repeats']} repeats, (min{DASH}max) in brackets.",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), kernel {m['kernel']}, Python "
        f"{m['python']}, Redis {m['redis']}. Peers: "
        + "; ".join(f"{k}: {v}" for k, v in meta.get("peers", {}).items()) + ".",
        "",
    ]
    if meta.get("note"):
        out += [meta["note"], ""]
    qfield = {r["name"]: r["notes"].get("start_field") for r in doc.get("systems", [])
              if r["family"] == "QueueCTL"}
    out += ["## Side by side (`true` jobs, concurrency 8)", "", *systems_table(doc), "",
            "Start for QueueCTL is the job record's "
            + ", ".join(f"`{v}` ({k})" for k, v in qfield.items() if v)
            + "; for the peers, `time.time()` just before the spawn, stored in the result.", "",
            "## Ratios (from the medians)", "", "| ratio | value | target | met |",
            "| --- | --- | --- | --- |", *map(render_ratio, doc.get("ratios", [])), "",
            "## No-queue limits", "", *rows_table(doc.get("limits"), LIMIT_ROWS, sizes), "",
            "## QueueCTL only", "", *rows_table(doc.get("queuectl"), QUEUECTL_ROWS, sizes), ""]
    longest = (doc.get("queuectl") or {}).get("notes", {}).get("promote_longest_command")
    if longest:
        out += [f"The longest call while promoting was `{longest}`.", ""]
    busiest = [f"* {r['label']} {r['model'].replace('x', TIMES)}: " + ", ".join(
        f"{k} {v}" for k, v in r["notes"].get("busiest_commands_per_job", {}).items())
        for r in doc.get("systems", []) if r["notes"].get("busiest_commands_per_job")]
    if busiest:
        out += ["## Busiest Redis commands per job (drain, last repeat)", "", *busiest, ""]
    return "\n".join(out)
