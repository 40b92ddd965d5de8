"""Printing a big map: time from SIGINT to exit with a map of 100,000 keys, text and JSON.

    sudo .venv/bin/python bench/mapprint.py [--quick] [--rounds N]  (= bench/run.py mapprint)

The program gives every getppid() of this process a key of its own:
    config = { max_map_keys = 200000 }
    tracepoint:syscalls:sys_enter_getppid / pid == $1 / { @n = @n + 1; @m[@n] = count(); }
Once the tool has attached, this process calls getppid() 100,000 times, then sends SIGINT: the tool
detaches, reads the (per-CPU) map, sorts and prints it to a file. The figure is SIGINT → exit (the
tool reaped). The same with one key gives the fixed cost of stopping, shown as its own row; the
output is checked (number of `@m` entries printed).
"""

from __future__ import annotations

import json
import os
import signal
import time

from lib import (ENTER, OURS, TP_ENTER, THEIRS, BenchError, Getppid, Options, Table, Target, Tools, alternate,
                 fmt, fmt_ratio, median, pinned, ratio, verdict, workload_cpu)

PROGRAM = (f"config = {{ max_map_keys = 200000 }} "
           f"{TP_ENTER} / pid == $1 / {{ @n = @n + 1; @m[@n] = count(); }}")
TARGET = Target("<=", 1.0)  # as a time ratio: speed ≥ 1x


def entries(path, output_format: str) -> int:
    """How many @m entries the output holds."""
    with open(path, "rb") as output:
        if output_format == "text":
            return sum(1 for line in output if line.startswith(b"@m["))
        for line in output:
            record = json.loads(line)
            if record.get("type") == "map" and "@m" in record.get("data", {}):
                return len(record["data"]["@m"])
    return 0


def measure(tools: Tools, tool: str, keys: int, output_format: str, getppid: Getppid, cpu: int | None) -> float:
    path = tools.directory / f"map-{tool}.out"
    with open(path, "wb") as output:
        running = tools.start(tool, PROGRAM, [str(os.getpid())], stdout=output, output_format=output_format)
    try:
        running.wait_attached(tracepoints=(ENTER,))
        with pinned(cpu):
            getppid(keys)
        time.sleep(0.1)
        start = time.monotonic()
    finally:
        finished = running.stop(signal.SIGINT)
    seconds = finished.end - start
    if finished.status != 0:
        raise BenchError(f"{tool} exited with {finished.status}: {finished.stderr.decode(errors='replace')[-300:]}")
    printed = entries(path, output_format)
    os.unlink(path)
    if printed != keys:
        raise BenchError(f"{tool} printed {printed} @m entries in {output_format}, not {keys}")
    return seconds


def run(tools: Tools, options: Options) -> list[Table]:
    keys = 100_000
    getppid = Getppid()
    cpu = workload_cpu()
    cases = [(f, k) for f in ("text", "json") for k in (keys, 1)]
    samples: dict[tuple, list[float]] = {}
    for i in range(options.rounds):
        for output_format, n in cases:
            for tool in alternate(i):
                options.log(f"mapprint round {i + 1}/{options.rounds}: {n} keys, {output_format}, with {tool}")
                samples.setdefault((output_format, n, tool), []).append(
                    measure(tools, tool, n, output_format, getppid, cpu))

    table = Table(f"Printing a map: SIGINT → exit, ms (median of {options.rounds} rounds)",
                  ["format", "keys", "bpfrun", "bpftrace", "ratio (time)", "target"])
    for output_format, n in cases:
        t = {tool: median(samples[(output_format, n, tool)]) for tool in (OURS, THEIRS)}
        r = ratio(t[OURS], t[THEIRS])
        table.add(output_format, f"{n:,}" + (" key" if n == 1 else " keys"), fmt(t[OURS] * 1000), fmt(t[THEIRS] * 1000), fmt_ratio(r),
                  verdict(TARGET, r) if n == keys else "(fixed cost of stopping)")
    table.notes.append("target: printing at least as fast as bpftrace, i.e. a time ratio ≤ 1")
    return [table]


if __name__ == "__main__":
    from lib import main_for

    main_for("mapprint")
