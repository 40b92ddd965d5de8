"""Records the ring buffer cannot take are counted by the BPF side and reported by bpfrun, as
bpftrace reports them: `Lost N events` on stderr, or a `lost_events` JSON line. Nothing is lost
silently: lines delivered plus losses reported equal the events the program sent.

BEGIN sends 400 records of 4 KiB each in one run, before bpfrun reads any: more than the 1 MiB
ring buffer it asks for holds. Then a burst of a million small records from a tracepoint, more
than bpfrun can print while they come.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

from tests.bpfrun_run import bpfrun_command, compile_program, needs_bpf

EVENTS = 400
PROGRAM = (
    "config = { perf_rb_pages = 256; max_strlen = 4096 } "  # strings up to 4096 bytes, as bpftrace needs
    'BEGIN { $s = "' + "x" * 4000 + '"; for ($i : 0..' + str(EVENTS) + ') { printf("%s\\n", $s); } exit(); }'
)


@needs_bpf
def test_losses_are_counted_and_reported_in_text_and_json(tmp_path: Path) -> None:
    bundle = compile_program(PROGRAM, tmp_path / "flood.bpfb")

    text = subprocess.run(bpfrun_command(bundle), capture_output=True, text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    delivered = text.stdout.count("x" * 4000 + "\n")
    lost = [int(count) for count in re.findall(r"^Lost (\d+) events$", text.stderr, re.MULTILINE)]
    assert lost and sum(lost) > 0, text.stderr
    assert delivered + sum(lost) == EVENTS

    json_run = subprocess.run(bpfrun_command("-f", "json", bundle), capture_output=True, text=True, timeout=60)
    assert json_run.returncode == 0, json_run.stderr
    messages = [json.loads(line) for line in json_run.stdout.splitlines()]
    losses = [message for message in messages if message["type"] == "lost_events"]
    assert losses and all(message["count"] == message["data"]["events"] for message in losses)
    printed = sum(1 for message in messages if message["type"] == "printf")
    assert printed + sum(message["count"] for message in losses) == EVENTS


BURST = 1_000_000


@needs_bpf
def test_a_burst_of_a_million_events_is_printed_or_counted_lost(tmp_path: Path) -> None:
    program = 'tracepoint:syscalls:sys_enter_getppid /pid == $1/ { printf("%d %d\\n", pid, tid); }'
    bundle = compile_program(program, tmp_path / "burst.bpfb")
    script = f"import ctypes, sys\nlibc = ctypes.CDLL(None)\nsys.stdin.readline()\nfor _ in range({BURST}): libc.syscall(110)\n"
    burst = subprocess.Popen(["/usr/bin/python3", "-c", script], stdin=subprocess.PIPE)
    tracer = subprocess.Popen(bpfrun_command(bundle, str(burst.pid)), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert tracer.stderr.readline() == b"Attached 1 probe\n"
    burst.stdin.write(b"go\n")
    burst.stdin.close()
    burst.wait(timeout=60)
    tracer.send_signal(signal.SIGINT)
    stdout, stderr = tracer.communicate(timeout=120)
    assert tracer.returncode == 0, stderr
    line = f"{burst.pid} {burst.pid}\n".encode()
    delivered = stdout.count(line)
    lost = sum(int(count) for count in re.findall(rb"^Lost (\d+) events$", stderr, re.MULTILINE))
    assert delivered + lost == BURST, (delivered, lost)
    assert stdout.count(b"\n") == delivered + 2  # nothing else, then the two newlines of the exit
