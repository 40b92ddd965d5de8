"""Running bpftc and bpfrun from bpfrun's tests, and checking that nothing stays loaded.

`needs_bpf` skips a test unless we are root and the compiler is installed. `programs_loaded()`
is the set of BPF program ids `bpftool prog show` lists; `wait_unloaded(before)` waits for the
kernel to free programs created since `before` (it frees them asynchronously after the last fd
closes) and returns those still there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BPFTC = BIN / "bpftc"

needs_bpf = pytest.mark.skipif(
    os.geteuid() != 0 or not BPFTC.exists(), reason="needs root (loads BPF) and bpftc in the venv"
)


def compile_program(program: str, bundle: Path) -> Path:
    result = subprocess.run([BPFTC, "-e", program, "-o", bundle], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return bundle


def bpfrun_command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "bpfrun", *map(str, args)]


def run_bpfrun(*args: str | Path, timeout: float = 20, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(bpfrun_command(*args), capture_output=True, timeout=timeout, input=stdin, cwd=ROOT)


def programs_loaded() -> set[int]:
    listing = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True)
    return {program["id"] for program in json.loads(listing.stdout or "[]")}


def wait_unloaded(before: set[int], timeout: float = 5) -> set[int]:
    deadline = time.monotonic() + timeout
    while (left := programs_loaded() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


class Workload:
    """A process that does `reads` read() calls of /dev/zero when told to, then exits.

    Everything it reads before `go()` (Python's start-up, the 'go' line) happens before the probes
    are attached; afterwards it calls read() exactly `reads` times and exits without reading more.
    """

    SCRIPT = (
        "import os, sys\n"
        "fd = os.open('/dev/zero', os.O_RDONLY)\n"
        "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
        "sys.stdin.readline()\n"
        "for _ in range(int(sys.argv[1])): os.read(fd, 1)\n"
        "os.write(1, b'done\\n')\n"
        "os._exit(0)\n"
    )

    def __init__(self, reads: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT, str(reads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.process.stdout.readline() == b"ready\n"
        self.pid = self.process.pid

    def go(self) -> None:
        self.process.stdin.write(b"go\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline() == b"done\n"
        self.process.wait(timeout=10)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def trace_workload(
    bundle: Path, workload: str, *options: str, python: str = "/usr/bin/python3"
) -> subprocess.CompletedProcess:
    """bpfrun on `bundle` while a Python process runs `workload` (with os, sys and time imported)
    once the probes are attached; the process's pid is $1 (and replaces {pid} in `options`). Ends
    bpfrun with SIGINT unless the program exits by itself. stderr starts with what bpfrun said
    when it attached (in JSON, that line is stdout's)."""
    script = f"import os, sys, time\nsys.stdin.readline()\n{workload}\n"
    process = subprocess.Popen([python, "-c", script], stdin=subprocess.PIPE)
    options = tuple(option.replace("{pid}", str(process.pid)) for option in options)
    tracer = subprocess.Popen(
        bpfrun_command(*options, bundle, str(process.pid)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    attached = (tracer.stdout if "json" in options else tracer.stderr).readline()
    process.stdin.write(b"go\n")
    process.stdin.close()
    process.wait(timeout=20)
    time.sleep(0.2)
    if tracer.poll() is None:
        tracer.send_signal(signal.SIGINT)
    stdout, stderr = tracer.communicate(timeout=20)
    return subprocess.CompletedProcess(tracer.args, tracer.returncode, stdout, attached + stderr)
