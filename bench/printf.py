"""printf throughput: events per second delivered to stdout, and events lost.

    sudo .venv/bin/python bench/printf.py [--quick] [--rounds N]  (= bench/run.py printf)

The program prints one line per getppid() of a workload process:
    tracepoint:syscalls:sys_enter_getppid / pid == $1 / { printf("%d %d\\n", tid, nsecs); }
The workload (a child process pinned to one CPU) makes N calls as fast as it can, once the tool
has attached. The tool's stdout goes to a file (so no reader of ours competes for the CPU); this
process watches its size, and the delivery ends when the size has not changed for a second. The
figures: lines delivered, events the tool reports lost (`Lost N events` on stderr, both tools),
delivered lines per second (from the workload's start to the last growth of the file), and the
tool's CPU time per delivered line (from /proc/PID/stat, over the same span).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from lib import (OURS, TP_ENTER, THEIRS, WORKLOAD_CHILD, BenchError, Getppid, Options, Table, Target, Tools,
                 alternate, fmt, fmt_ratio, median, ratio, verdict, workload_cpu)

PROGRAM = f'{TP_ENTER} / pid == $1 / {{ printf("%d %d\\n", tid, nsecs); }}'
TARGET = Target(">=", 1.0)
QUIET = 1.0  # seconds without output that end the delivery


def measure(tools: Tools, tool: str, calls: int, number: int, cpu: int | None, index: int) -> dict:
    child = subprocess.Popen([sys.executable, "-c", WORKLOAD_CHILD, str(calls), str(number),
                              str(-1 if cpu is None else cpu)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    path = tools.directory / f"printf-{tool}-{index}.out"
    try:
        with open(path, "wb") as output:
            running = tools.start(tool, PROGRAM, [str(child.pid)], stdout=output)
        try:
            running.wait_attached()
            cpu_before = running.cpu_times()
            start = time.monotonic()
            child.stdin.write(b"g")
            child.stdin.close()
            generating = float(child.stdout.read())
            child.wait()
            # From the workload's end on (it may have taken longer than QUIET), until the file
            # stops growing: the delivery ends at the last growth, or at the workload's end.
            size, last = os.stat(path).st_size, time.monotonic()
            while time.monotonic() - last < QUIET and running.alive():
                time.sleep(0.002)
                now = os.stat(path).st_size
                if now != size:
                    size, last = now, time.monotonic()
            cpu_after = running.cpu_times()
        finally:
            finished = running.stop(signal.SIGINT)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    with open(path, "rb") as output:
        delivered = sum(1 for line in output if line[:1].isdigit())
    os.unlink(path)
    if finished.status != 0:
        raise BenchError(f"{tool} exited with {finished.status}: {finished.stderr.decode(errors='replace')[-300:]}")
    if not delivered or last <= start:
        raise BenchError(f"{tool} printed nothing: {finished.stderr.decode(errors='replace')[-300:]}")
    user, system = (after - before for after, before in zip(cpu_after, cpu_before))
    per_line = (lambda seconds: seconds / delivered if delivered else None)
    return {"delivered": delivered, "lost": finished.lost, "seconds": last - start, "offered": calls / generating,
            "rate": delivered / (last - start), "cpu_per_line": per_line(user + system),
            "user_per_line": per_line(user), "system_per_line": per_line(system)}


def run(tools: Tools, options: Options) -> list[Table]:
    calls = 100_000 if options.quick else 1_000_000
    number = Getppid().number
    cpu = workload_cpu()
    samples: dict[str, list[dict]] = {OURS: [], THEIRS: []}
    for i in range(options.rounds):
        for tool in alternate(i):
            options.log(f"printf round {i + 1}/{options.rounds} with {tool}")
            samples[tool].append(measure(tools, tool, calls, number, cpu, i))

    def m(tool: str, key: str):
        return median([s[key] for s in samples[tool]])

    table = Table(f"printf throughput ({calls:,} events as fast as the workload makes them; median of "
                  f"{options.rounds} rounds)", ["", "bpfrun", "bpftrace", "ratio", "target"])
    table.add("events offered per second", fmt(m(OURS, "offered"), digits=0), fmt(m(THEIRS, "offered"), digits=0),
              fmt_ratio(ratio(m(OURS, "offered"), m(THEIRS, "offered"))), "")
    r = ratio(m(OURS, "rate"), m(THEIRS, "rate"))
    table.add("lines delivered per second", fmt(m(OURS, "rate"), digits=0), fmt(m(THEIRS, "rate"), digits=0),
              fmt_ratio(r), verdict(TARGET, r))
    table.add("lines delivered", fmt(int(m(OURS, "delivered"))), fmt(int(m(THEIRS, "delivered"))), "", "")
    table.add("events reported lost", fmt(int(m(OURS, "lost"))), fmt(int(m(THEIRS, "lost"))), "", "")
    table.add("delivery time (s)", fmt(m(OURS, "seconds"), digits=2), fmt(m(THEIRS, "seconds"), digits=2),
              fmt_ratio(ratio(m(OURS, "seconds"), m(THEIRS, "seconds"))), "")
    for label, key in (("tool CPU per delivered line (µs)", "cpu_per_line"), ("  of which user", "user_per_line"),
                       ("  of which system", "system_per_line")):
        table.add(label, fmt(m(OURS, key) * 1e6, digits=2), fmt(m(THEIRS, key) * 1e6, digits=2),
                  fmt_ratio(ratio(m(OURS, key), m(THEIRS, key))), "")
    unaccounted = {t: max(calls - s["delivered"] - s["lost"] for s in samples[t]) for t in (OURS, THEIRS)}
    if any(unaccounted.values()):
        table.notes.append(f"events neither delivered nor reported lost (most in one run): bpfrun "
                           f"{unaccounted[OURS]}, bpftrace {unaccounted[THEIRS]}")
    else:
        table.notes.append("every event was either delivered or reported lost, in every run, by both tools")
    return [table]


if __name__ == "__main__":
    from lib import main_for

    main_for("printf")
