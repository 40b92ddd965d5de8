"""Compile time: bpftc against bpftrace --dry-run, wall and CPU (user + system, wait4).

    sudo .venv/bin/python bench/compiletime.py [--quick] [--rounds N]  (= bench/run.py compile)

Inputs: every examples/*.bt and the 20-probe script of the start-up benchmark. The examples use
the original README's spellings (`@x = delete()`, `quantize()`), which bpftrace 0.27 no longer
accepts: both tools compile a copy in today's spelling (`delete(@x)`, `hist()`), which bpftc
accepts too. `bpftrace --dry-run` parses, checks and generates the BPF code without loading or
attaching it, the closest thing it has to bpftc's job; it also reads the kernel's BTF, which
bpftc does not. A script bpftrace cannot compile on this machine (kprobes on a kernel without
them) is measured for bpftc alone.

The bpftrace side runs through the oracle wrapper; the "oracle set-up" row is the wrapper with
`true` in place of bpftrace, and the "less set-up" ratios subtract it.
"""

from __future__ import annotations

import re
import subprocess

from lib import (BPFTC, OURS, ROOT, SETUP, THEIRS, TWENTY_PROBES, Options, Table, Target, Tools, alternate,
                 fmt, fmt_ratio, median, ratio, verdict)

CPU_TARGET = Target("<=", 1.0)


def modern(text: str) -> str:
    """The 2017 spellings in today's: `@m[k] = delete();` → `delete(@m[k]);`, quantize → hist."""
    text = re.sub(r"(@\w*(?:\[[^\]]*\])?)\s*=\s*delete\(\s*\)\s*;", r"delete(\1);", text)
    return re.sub(r"\bquantize\(", "hist(", text)


def inputs(tools: Tools) -> list[tuple[str, str]]:
    found = [(path.name, tools.file(path.name, modern(path.read_text())))
             for path in sorted((ROOT / "examples").glob("*.bt"))]
    found.append(("20 probes", tools.file("twenty.bt", TWENTY_PROBES)))
    return [(name, str(path)) for name, path in found]


def run(tools: Tools, options: Options) -> list[Table]:
    runs = 2 * options.rounds
    scripts = inputs(tools)
    out = str(tools.directory / "compiled.bpfb")
    argv = {
        OURS: lambda path: [str(BPFTC), path, "-o", out],
        THEIRS: lambda path: [tools.bpftrace, "--dry-run", path, "0"],
    }
    setup = tools.setup_argv()
    samples: dict[tuple[str, str], list] = {}
    failed: dict[tuple[str, str], str] = {}
    for i in range(runs):
        for name, path in scripts:
            for tool in alternate(i):
                if (name, tool) in failed:
                    continue
                options.log(f"compile run {i + 1}/{runs}: {name} with {tool}")
                finished = tools.run_once(argv[tool](path))
                if finished.status != 0:
                    errors = [line for line in finished.stderr.decode(errors="replace").splitlines()
                              if "ERROR" in line]
                    failed[(name, tool)] = errors[0] if errors else f"exit status {finished.status}"
                    continue
                samples.setdefault((name, tool), []).append(finished)
        if setup:
            samples.setdefault(("", SETUP), []).append(tools.run_once(setup))

    table = Table(f"Compile time, ms (median of {runs} runs each; bpftrace: --dry-run)",
                  ["script", "", "bpftc", "bpftrace", "ratio", "ratio less set-up", "target"])
    base = samples.get(("", SETUP))
    setup_wall = median([f.wall for f in base]) if base else None
    setup_cpu = median([f.cpu for f in base]) if base else None
    for name, _ in scripts:
        if (name, OURS) in failed:
            table.add(name, "", "fails", "", "", "", "")
            table.notes.append(f"{name}: bpftc fails: {failed[(name, OURS)]}")
            continue
        for label, metric, extra, target in (("wall", lambda f: f.wall, setup_wall, None),
                                             ("CPU", lambda f: f.cpu, setup_cpu, CPU_TARGET)):
            ours = median([metric(f) for f in samples[(name, OURS)]])
            if (name, THEIRS) in failed:
                table.add(name if label == "wall" else "", label, fmt(ours * 1000), "n/a", "", "", "")
                continue
            theirs = median([metric(f) for f in samples[(name, THEIRS)]])
            r = ratio(ours, theirs)
            less = ratio(ours, theirs - extra) if extra is not None else None
            table.add(name if label == "wall" else "", label, fmt(ours * 1000), fmt(theirs * 1000), fmt_ratio(r),
                      fmt_ratio(less), verdict(target, r))
        if (name, THEIRS) in failed:
            table.notes.append(f"{name}: bpftrace cannot compile it here: {failed[(name, THEIRS)]}")
    if setup_wall is not None:
        table.notes.append(f"oracle set-up (the wrapper running `true`): wall {fmt(setup_wall * 1000)} ms, "
                           f"CPU {fmt(setup_cpu * 1000)} ms; inside bpftrace's figures")
    rss = {t: median([f.maxrss_kib for (n, tt), fs in samples.items() if tt == t for f in fs]) for t in (OURS, THEIRS)}
    if rss[OURS] and rss[THEIRS]:
        table.notes.append(f"peak RSS while compiling (median): bpftc {fmt(rss[OURS] / 1024)} MiB, "
                           f"bpftrace {fmt(rss[THEIRS] / 1024)} MiB")
    return [table, stage_breakdown(tools, options, dict(scripts)["20 probes"])]


def stage_breakdown(tools: Tools, options: Options, path: str) -> Table:
    """Where bpftc's CPU time goes, through its command line only: `bpftc --dump STAGE` stops after
    STAGE, so the differences between consecutive stages are each stage's cost; before them, the
    interpreter starting and `bpftc --help` (which imports the compiler's modules)."""
    help_text = subprocess.run([str(BPFTC), "--help"], capture_output=True, text=True,
                               env=tools.environment).stdout
    found = re.search(r"--dump\s*\[([a-z|\s]+)\]", help_text)
    stages = [s.strip() for s in found.group(1).split("|")] if found else []
    steps = [("python -c pass (the venv's interpreter)", [str(BPFTC.parent / "python"), "-c", "pass"]),
             ("bpftc --help (+ importing the compiler)", [str(BPFTC), "--help"])]
    steps += [(f"--dump {stage}", [str(BPFTC), "--dump", stage, path]) for stage in stages if stage != "bundle"]
    steps.append(("whole compile (bundle written)", [str(BPFTC), path, "-o", str(tools.directory / "stages.bpfb")]))
    runs = max(3, options.rounds)
    cpu: dict[str, list[float]] = {name: [] for name, _ in steps}
    for i in range(runs):
        for name, argv in steps:
            options.log(f"compile stages run {i + 1}/{runs}: {name}")
            finished = tools.run_once(argv)
            if finished.status == 0:
                cpu[name].append(finished.cpu)
    table = Table(f"bpftc's CPU time by stage, 20-probe script (ms, median of {runs} runs; each row runs "
                  f"everything before it again)", ["step", "CPU, cumulative", "this step"])
    previous = 0.0
    for name, _ in steps:
        value = median(cpu[name])
        if value is None:
            table.add(name, "fails", "")
            continue
        table.add(name, fmt(value * 1000), fmt((value - previous) * 1000))
        previous = value
    table.notes.append("a step can show a small negative cost: noise between separate runs")
    table.notes.append("--help and --dump import click for their command line (~30 ms of CPU), a plain compile does "
                       "not; --dump emit runs LLVM's code generation twice (the object, then the assembly it "
                       "prints): the whole compile is the row to compare with bpftrace")
    return table


if __name__ == "__main__":
    from lib import main_for

    main_for("compile")
