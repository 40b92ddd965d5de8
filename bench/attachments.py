"""One per-event case, attached many times: how far one attachment's cost is from the next.

The events benchmark takes the median of a few rounds; a keyed map's cost moves by tens of ns
from one attachment to the next (where the kernel's hash table and its element land), which is
as much as a target's margin. This runs bpfrun and bpftrace in turn, N attachments each, on
`sys_enter_getppid`, and prints each tool's distribution (kernel run_time_ns / run_cnt over
300,000 calls per attachment).

    sudo .venv/bin/python bench/attachments.py [N] ['PROGRAM']   # default: 15, @[tid] = count()
"""

from __future__ import annotations

import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile

from lib import BPFRUN, BPFTC, ORACLE

DEFAULT_PROGRAM = "tracepoint:syscalls:sys_enter_getppid { @[tid] = count(); }"
CALLS = 300_000
SYS_GETPPID = 110  # x86_64

libc = ctypes.CDLL(None, use_errno=True)


def programs() -> dict[int, dict]:
    shown = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True).stdout
    return {program["id"]: program for program in json.loads(shown) if "getppid" in program.get("name", "")}


def cost_per_event(command: list[str]) -> float:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while "Attach" not in (line := process.stderr.readline()):
            if not line:
                raise SystemExit(f"{command[0]} ended before attaching")
        for _ in range(20_000):  # warm-up
            libc.syscall(SYS_GETPPID)
        before = programs()
        for _ in range(CALLS):
            libc.syscall(SYS_GETPPID)
        after = programs()
    finally:
        process.send_signal(2)
        process.wait()
    (program_id, first), *others = before.items()
    if others:
        raise SystemExit("another program is attached to sys_enter_getppid: measure on a quiet machine")
    last = after[program_id]
    return (last["run_time_ns"] - first["run_time_ns"]) / (last["run_cnt"] - first["run_cnt"])


def main() -> None:
    attachments = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    program = sys.argv[2] if len(sys.argv) > 2 else DEFAULT_PROGRAM
    os.sched_setaffinity(0, {1})
    with tempfile.TemporaryDirectory() as directory:
        bundle = os.path.join(directory, "case.bpfb")
        subprocess.run([str(BPFTC), "-e", program, "-o", bundle], check=True)
        tools = {"bpfrun": [str(BPFRUN), bundle], "bpftrace": [str(ORACLE), "-e", program]}
        costs: dict[str, list[float]] = {name: [] for name in tools}
        subprocess.run(["sysctl", "-qw", "kernel.bpf_stats_enabled=1"], check=True)
        try:
            for _ in range(attachments):
                for name, command in tools.items():
                    costs[name].append(cost_per_event(command))
        finally:
            subprocess.run(["sysctl", "-qw", "kernel.bpf_stats_enabled=0"], check=True)
    print(program)
    for name, values in costs.items():
        values.sort()
        print(f"{name:8s} median {statistics.median(values):6.1f} ns   min {values[0]:6.1f}   max {values[-1]:6.1f}   "
              + " ".join(f"{value:.0f}" for value in values))


if __name__ == "__main__":
    main()
