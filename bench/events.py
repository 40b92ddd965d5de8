"""Cost per event of the generated BPF programs, from the kernel's own accounting.

With kernel.bpf_stats_enabled=1 the kernel counts, for every program, how many times it ran
(run_cnt) and for how long (run_time_ns). Each case's program is attached to getppid()'s syscall
tracepoints by one tool at a time; once it has attached, this process calls getppid() N times
(through syscall(2), on one CPU); `bpftool -j prog show id ID` before and after gives the cost per
run of each of the tool's programs (found through the bpf_link descriptors the tool holds). A
case with two probes (start/delta) costs the sum of its two programs' costs per run.

The floor is the cheaper of the two tools' empty programs (`{ }`) on the same tracepoint, measured
in the same round; "above floor" is a case's cost minus the floor of each of its probes, i.e. what
the program's own code costs. The tools take turns within every round, first one then the other.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from lib import (ENTER, EXIT, OURS, THEIRS, TP_ENTER, TP_EXIT, BenchError, Getppid, Options, Table,
                 Target, Tools, alternate, attached_programs, bpf_stats, fmt, fmt_ratio, median, pinned,
                 program_stats, ratio, verdict, workload_cpu, xlated)


@dataclass
class Case:
    name: str
    program: str
    probes: tuple[str, ...]
    target: Target | None = None
    max_events: int | None = None  # printf: what fits in the smaller ring buffer, so none is lost


CASES = [
    Case("empty (floor)", f"{TP_ENTER} {{ }}", (ENTER,)),
    Case("empty, two probes (floor)", f"{TP_ENTER} {{ }} {TP_EXIT} {{ }}", (ENTER, EXIT)),
    Case("count()", f"{TP_ENTER} {{ @ = count(); }}", (ENTER,), Target("<=", 0.6)),
    Case("count(), pid filter", f"{TP_ENTER} / pid == $1 / {{ @ = count(); }}", (ENTER,)),
    Case("@[tid] = count()", f"{TP_ENTER} {{ @[tid] = count(); }}", (ENTER,), Target("<=", 1.05)),
    Case("hist(tid)", f"{TP_ENTER} {{ @ = hist(tid); }}", (ENTER,), Target("<=", 0.5)),
    Case("@[tid] = hist(tid)", f"{TP_ENTER} {{ @[tid] = hist(tid); }}", (ENTER,), Target("<=", 1.05)),
    Case("lhist(tid % 100, 0, 100, 10)", f"{TP_ENTER} {{ @ = lhist(tid % 100, 0, 100, 10); }}", (ENTER,)),
    Case("start/delta", f"{TP_ENTER} {{ @s[tid] = nsecs; }} "
         f"{TP_EXIT} / @s[tid] / {{ @ = hist(nsecs - @s[tid]); delete(@s[tid]); }}", (ENTER, EXIT),
         Target("<=", 1.0)),
    Case('printf("%d %d\\n", tid, nsecs)', f'{TP_ENTER} {{ printf("%d %d\\n", tid, nsecs); }}', (ENTER,),
         max_events=20_000),
]


@dataclass
class Sample:
    per_probe: dict[str, float]  # tracepoint → ns per run
    runs: int  # runs of the first probe's program (the workload's calls and any other process's)
    lost: int
    info: dict[str, dict]  # tracepoint → bpftool's record of the program (first round)

    @property
    def total(self) -> float:
        return sum(self.per_probe.values())


def measure(tools: Tools, tool: str, case: Case, calls: int, getppid: Getppid, cpu: int | None,
            options: Options) -> Sample:
    running = tools.start(tool, case.program, [str(os.getpid())])
    try:
        running.wait_attached()
        programs = attached_programs(running.pid)
        missing = [p for p in case.probes if p not in programs]
        if missing:
            raise BenchError(f"{tool} holds no program attached to {', '.join(missing)}")
        ids = [programs[p] for p in case.probes]
        with pinned(cpu):
            getppid(calls // 10)  # warm-up: caches, the maps' first elements
            before = program_stats(ids)
            getppid(calls)
            after = program_stats(ids)
        if options.dump_dir is not None:
            for probe, prog_id in zip(case.probes, ids):
                name = re.sub(r"[^A-Za-z0-9]+", "-", case.name).strip("-")
                (options.dump_dir / f"{name}.{tool}.{probe}.xlated.txt").write_text(xlated(prog_id))
    finally:
        finished = running.stop()
    per_probe = {}
    for probe, prog_id in zip(case.probes, ids):
        runs = after[prog_id].get("run_cnt", 0) - before[prog_id].get("run_cnt", 0)
        nanoseconds = after[prog_id].get("run_time_ns", 0) - before[prog_id].get("run_time_ns", 0)
        if runs <= 0:
            raise BenchError(f"{tool}: the program on {probe} did not run (bpf_stats_enabled off?)")
        per_probe[probe] = nanoseconds / runs
    first = ids[0]
    runs = after[first].get("run_cnt", 0) - before[first].get("run_cnt", 0)
    return Sample(per_probe, runs, finished.lost, {p: after[i] for p, i in zip(case.probes, ids)})


def run(tools: Tools, options: Options) -> list[Table]:
    calls = 20_000 if options.quick else 200_000
    rounds = options.rounds
    getppid = Getppid()
    cpu = workload_cpu()
    samples: dict[tuple[str, str], list[Sample]] = {}
    failures: dict[str, str] = {}
    with bpf_stats():
        for round_number in range(rounds):
            for case in CASES:
                if case.name in failures:
                    continue
                n = min(calls, case.max_events) if case.max_events else calls
                for tool in alternate(round_number):
                    options.log(f"events round {round_number + 1}/{rounds}: {case.name} with {tool}")
                    try:
                        sample = measure(tools, tool, case, n, getppid, cpu, options)
                    except BenchError as error:
                        failures[case.name] = f"{tool}: {error}"
                        break
                    samples.setdefault((case.name, tool), []).append(sample)

    # The floors, round by round: the cheaper of the two tools' empty programs, per tracepoint;
    # one-probe cases against the one-probe empty program, two-probe cases against the two-probe one
    # (a program's cost depends a little on whether the other tracepoint has one too).
    floor_cases = {1: CASES[0].name, 2: CASES[1].name}

    def floor(probes: int, i: int) -> dict[str, float] | None:
        try:
            ours, theirs = (samples[(floor_cases[probes], t)][i] for t in (OURS, THEIRS))
        except (KeyError, IndexError):
            return None
        return {p: min(ours.per_probe[p], theirs.per_probe[p]) for p in ours.per_probe}

    table = Table(
        f"Cost per event (ns, kernel run_time_ns / run_cnt; median of {rounds} rounds of {calls:,} getppid() calls)",
        ["case", "bpftc", "bpftrace", "bpftc above floor", "bpftrace above floor", "ratio above floor",
         "target", "xlated insns bpftc / bpftrace"])
    for case in CASES:
        if case.name in failures or any((case.name, t) not in samples for t in (OURS, THEIRS)):
            table.add(case.name, "n/a", "n/a", "n/a", "n/a", "n/a", verdict(case.target, None), "")
            continue
        raw = {t: median([s.total for s in samples[(case.name, t)]]) for t in (OURS, THEIRS)}
        insns = " / ".join(
            "+".join(str(samples[(case.name, t)][0].info[p].get("bytes_xlated", 0) // 8) for p in case.probes)
            for t in (OURS, THEIRS))
        if case.name in floor_cases.values():
            table.add(case.name, fmt(raw[OURS]), fmt(raw[THEIRS]), "", "", fmt_ratio(ratio(raw[OURS], raw[THEIRS]))
                      + " (raw)", "", insns)
            continue
        above = {}
        for t in (OURS, THEIRS):
            values = []
            for i, s in enumerate(samples[(case.name, t)]):
                f = floor(len(case.probes), i)
                if f is not None:
                    values.append(s.total - sum(f[p] for p in case.probes))
            above[t] = median(values)
        r = ratio(above[OURS], above[THEIRS])
        shown = fmt_ratio(r)
        if r is not None and r <= 0:
            r, shown = 0.0, "≈0 (at the floor)"
        table.add(case.name, fmt(raw[OURS]), fmt(raw[THEIRS]), fmt(above[OURS]), fmt(above[THEIRS]), shown,
                  verdict(case.target, r), insns)
        lost = {t: max(s.lost for s in samples[(case.name, t)]) for t in (OURS, THEIRS)}
        if any(lost.values()):
            table.notes.append(f"{case.name}: events lost (most in one run): bpftc {lost[OURS]}, bpftrace {lost[THEIRS]}")
    for probes in (1, 2):
        floors = [f for f in (floor(probes, i) for i in range(rounds)) if f]
        if floors:
            table.notes.append(f"floor of the {probes}-probe cases (cheaper empty program, median): "
                               + ", ".join(f"{p} {fmt(median([f[p] for f in floors]))} ns" for p in floors[0]))
    extra = [s.runs - min(calls, c.max_events or calls) for c in CASES for t in (OURS, THEIRS)
             for s in samples.get((c.name, t), [])]
    if extra:
        table.notes.append(f"runs from other processes during a measurement: at most {max(extra)} "
                           f"(against the workload's {calls:,})")
    table.notes.append("the printf case makes 20,000 calls per run, so that neither tool's ring buffer fills "
                       "(a full ring buffer makes events cheaper: they are dropped)")
    table.notes.append("run_time_ns includes the kernel's two clock reads around each run: the floor is mostly "
                       "that; differences of a few ns are noise")
    for name, why in failures.items():
        table.notes.append(f"not measured: {name}: {why}")
    return [table]
