"""Start-up: time from launching the tool to its first event, and its peak memory.

    sudo .venv/bin/python bench/startup.py [--quick] [--rounds N]     (= bench/run.py startup)

Two programs. `BEGIN { exit(); }`: its one event is BEGIN, after which it exits, so the figure is
launch → exit. The 20-probe script (lib.TWENTY_PROBES): 19 syscall tracepoints plus one on
getppid() filtered on this process's pid, which prints a line and exits; from the launch on, this
process calls getppid() every half millisecond, so the figure is launch → that line read from the
tool's stdout, i.e. all 20 probes attached and the first event delivered. Peak RSS is the kernel's
ru_maxrss of the tool (wait4).

bpfrun runs a bundle bpftc compiled beforehand (once, not timed: that is the point of the split);
bpftrace compiles the program at every start. The bpftrace side runs through the oracle wrapper
(unshare + chroot + mounts): the "oracle set-up" row is that wrapper with `true` in place of
bpftrace, and the "less set-up" ratio subtracts it from bpftrace's time.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from lib import (BPFRUN, INSTALLED, OURS, SETUP, THEIRS, TWENTY_PROBES, BenchError, Getppid, Options, Table,
                 Target, Tools, alternate, fmt, fmt_ratio, median, ratio, rss_by_mapping, verdict)

BEGIN_EXIT = "BEGIN { exit(); }"
CASES = [("BEGIN { exit(); }", BEGIN_EXIT), ("20 probes", TWENTY_PROBES)]
TIME_TARGET = Target("<=", 0.15)
RSS_TARGET = Target("<=", 0.1)


def first_event(tools: Tools, tool: str, program: str, getppid: Getppid) -> tuple[float | None, float, int]:
    """(launch → first event, launch → exit, peak RSS KiB) of one run."""
    running = tools.start(tool, program, [str(os.getpid())], stdout=subprocess.PIPE, stdout_marker=b"first event")
    deadline = time.monotonic() + 60
    while not running.first_event_seen() and running.alive() and time.monotonic() < deadline:
        getppid(1)
        time.sleep(0.0005)
    finished = running.stop(None, 30)
    if finished.status != 0:
        raise BenchError(f"{tool} exited with {finished.status}: {finished.stderr.decode(errors='replace')[-300:]}")
    return finished.marks.get("first event"), finished.wall, finished.maxrss_kib


def run(tools: Tools, options: Options) -> list[Table]:
    runs = 4 * options.rounds
    getppid = Getppid()
    setup = tools.setup_argv()
    try:
        installed = tools.installed_bpfrun()
        extra: tuple[str, ...] = (INSTALLED,)
    except BenchError as error:
        installed, extra = error, ()
    samples: dict[tuple[str, str], list[tuple[float | None, float, int]]] = {}
    for i in range(runs):
        for name, program in CASES:
            for tool in alternate(i) + extra:
                options.log(f"startup run {i + 1}/{runs}: {name} with {tool}")
                if name == CASES[0][0]:
                    finished = tools.spawn(tools.argv(tool, program)).stop(None, 60)
                    if finished.status != 0:
                        raise BenchError(f"{tool} exited with {finished.status}: "
                                         f"{finished.stderr.decode(errors='replace')[-300:]}")
                    sample = (finished.wall, finished.wall, finished.maxrss_kib)
                else:
                    sample = first_event(tools, tool, program, getppid)
                samples.setdefault((name, tool), []).append(sample)
        if setup:
            finished = tools.run_once(setup)
            samples.setdefault(("", SETUP), []).append((finished.wall, finished.wall, finished.maxrss_kib))

    references = reference_runs(tools, max(3, runs // 2), installed)
    breakdown = memory_breakdown(tools)

    table = Table(f"Start-up: launch → first event, and peak RSS (median of {runs} runs each)",
                  ["program", "", "bpfrun", "bpftrace", "ratio", "ratio less set-up", "target"])
    setup_time = median([s[0] for s in samples.get(("", SETUP), [])])
    for name, _ in CASES:
        event = {t: median([s[0] for s in samples[(name, t)]]) for t in (OURS, THEIRS)}
        rss = {t: median([s[2] for s in samples[(name, t)]]) for t in (OURS, THEIRS)}
        r = ratio(event[OURS], event[THEIRS])
        less = ratio(event[OURS], event[THEIRS] - setup_time) if setup_time is not None else None
        label = "launch → exit (ms)" if name == CASES[0][0] else "launch → first event (ms)"
        table.add(name, label, fmt(event[OURS] * 1000), fmt(event[THEIRS] * 1000), fmt_ratio(r),
                  fmt_ratio(less), verdict(TIME_TARGET, r))
        if name != CASES[0][0]:
            wall = {t: median([s[1] for s in samples[(name, t)]]) for t in (OURS, THEIRS)}
            table.add("", "launch → exit (ms)", fmt(wall[OURS] * 1000), fmt(wall[THEIRS] * 1000),
                      fmt_ratio(ratio(wall[OURS], wall[THEIRS])), "", "")
        table.add("", "peak RSS (MiB)", fmt(rss[OURS] / 1024), fmt(rss[THEIRS] / 1024), fmt_ratio(ratio(rss[OURS], rss[THEIRS])),
                  "", verdict(RSS_TARGET, ratio(rss[OURS], rss[THEIRS])))
        if (name, INSTALLED) in samples:  # the same bpfrun, installed as on a production host
            alone = median([s[0] for s in samples[(name, INSTALLED)]])
            alone_rss = median([s[2] for s in samples[(name, INSTALLED)]])
            r = ratio(alone, event[THEIRS])
            less = ratio(alone, event[THEIRS] - setup_time) if setup_time is not None else None
            table.add("", f"{label}, bpfrun installed alone", fmt(alone * 1000), fmt(event[THEIRS] * 1000),
                      fmt_ratio(r), fmt_ratio(less), "(reference)")
            table.add("", "peak RSS (MiB), bpfrun installed alone", fmt(alone_rss / 1024), fmt(rss[THEIRS] / 1024),
                      fmt_ratio(ratio(alone_rss, rss[THEIRS])), "", "(reference)")
    if setup_time is not None:
        setup_rss = median([s[2] for s in samples[("", SETUP)]])
        table.notes.append(f"oracle set-up (the bpftrace wrapper running `true`): {fmt(setup_time * 1000)} ms, "
                           f"peak RSS {fmt(setup_rss / 1024)} MiB; it is inside bpftrace's figures")
    table.notes.append("first-event resolution: this process calls getppid() every 0.5 ms")
    if isinstance(installed, BenchError):
        table.notes.append(f"bpfrun installed alone: not measured ({installed})")
    else:
        table.notes.append("bpfrun installed alone: the same bpfrun and bundle, installed as Dockerfile.run installs it "
                           "(pip into a fresh virtualenv of Debian's python3; no editable install of the compiler "
                           "beside it), run in the same rounds; the targets are judged on the rows above")
    for name, (wall, rss) in references.items():
        table.notes.append(f"for reference, {name}: {fmt(wall * 1000)} ms, peak RSS {fmt(rss / 1024)} MiB")
    for tool, totals in breakdown.items():
        top = sorted(totals.items(), key=lambda item: -item[1])[:6]
        table.notes.append(f"resident memory of {tool} once attached (20 probes), largest parts: "
                           + ", ".join(f"{name} {kib / 1024:.1f}" for name, kib in top)
                           + f" MiB (total {sum(totals.values()) / 1024:.1f} MiB)")
    return [table]


def reference_runs(tools: Tools, runs: int, installed: Path | BenchError) -> dict[str, tuple[float, int]]:
    """What bpfrun cannot go below: its Python interpreter starting (same venv, same environment),
    and bpfrun's command line alone (interpreter + click, which bpfrun imports for --help only)."""
    commands = {"the venv's python -c pass": [str(BPFRUN.parent / "python"), "-c", "pass"],
                "bpfrun --help": [str(BPFRUN), "--help"]}
    if not isinstance(installed, BenchError):
        commands["python -c pass of bpfrun installed alone"] = [str(installed.parent / "python"), "-c", "pass"]
    found = {}
    for name, argv in commands.items():
        samples = [tools.run_once(argv) for _ in range(runs)]
        found[name] = (median([f.wall for f in samples]), median([f.maxrss_kib for f in samples]))
    return found


def memory_breakdown(tools: Tools) -> dict[str, dict[str, int]]:
    """Each tool's resident memory by mapping, attached to the 20 probes (the trigger never fires:
    its pid filter names pid 0)."""
    found = {}
    for tool in (OURS, THEIRS):
        running = tools.start(tool, TWENTY_PROBES, ["0"])
        try:
            running.wait_attached()
            time.sleep(0.2)
            found["bpfrun" if tool == OURS else tool] = rss_by_mapping(running.pid)
        except (BenchError, OSError):
            pass
        finally:
            running.stop()
    return found


if __name__ == "__main__":
    from lib import main_for

    main_for("startup")
