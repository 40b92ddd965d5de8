"""Start-up benchmark: bpfrun on a precompiled bundle against bpftrace on the same program.

    sudo .venv/bin/python bench/startup.py [RUNS]

Runs the two side by side, alternating, RUNS times each (default 20), and prints the median wall
time and peak memory (max RSS) of each and their ratio. Timings on shared machines are noisy:
read the ratio, not the absolute numbers. bpftrace runs through ../shared/tools/bpftrace-oracle,
whose chroot set-up adds a little to its time. bpftrace compiles the program on every start;
bpfrun does not need to (bpftc did it once, elsewhere): that difference is what this measures.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORACLE = ROOT.parent / "shared" / "tools" / "bpftrace-oracle"
PROGRAM = 'BEGIN { printf("hello\\n"); exit(); }'


def measure(command: list[str]) -> tuple[float, int]:
    """Wall seconds and max RSS (KiB) of one run of `command`."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command[0]} failed with status {process.returncode}")
    return elapsed, usage.ru_maxrss


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with tempfile.TemporaryDirectory() as directory:
        bundle = Path(directory, "hello.bpfb")
        subprocess.run([ROOT / ".venv/bin/bpftc", "-e", PROGRAM, "-o", bundle], check=True)
        commands = {
            "bpfrun": [str(ROOT / ".venv/bin/bpfrun"), str(bundle)],
            "bpftrace": [str(ORACLE), "-e", PROGRAM],
        }
        results: dict[str, list[tuple[float, int]]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, command in commands.items():
                results[name].append(measure(command))
    medians = {
        name: (statistics.median(t for t, _ in samples), statistics.median(m for _, m in samples))
        for name, samples in results.items()
    }
    for name, (seconds, rss) in medians.items():
        print(f"{name:9} median {seconds * 1000:7.1f} ms   max RSS {rss / 1024:6.1f} MiB   ({runs} runs)")
    (ours_time, ours_rss), (their_time, their_rss) = medians["bpfrun"], medians["bpftrace"]
    print(f"bpfrun / bpftrace: time {ours_time / their_time:.2f}x, memory {ours_rss / their_rss:.2f}x")


if __name__ == "__main__":
    main()
