"""Nothing of a run stays in the kernel, however bpfrun ends: exit(), SIGINT, SIGTERM or SIGKILL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from tests.runtime.harness import BIN

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loads BPF programs: needs root")

PROGRAM = (
    "tracepoint:syscalls:sys_enter_read { @[tid] = count(); } "
    "interval:ms:20 { @ticks = count(); } "
    'END { printf("end\\n"); }'
)


def our_programs() -> set[str]:
    """Ids of loaded BPF programs compiled by bpftc (its program names start with the provider)."""
    listing = subprocess.run(["bpftool", "prog", "show"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"^(\d+): \w+\s+name (?:tracepoint_|interval_|end_|begin_)", listing, re.MULTILINE))


def programs_of(pid: int) -> set[str]:
    """Ids of the BPF programs process `pid` holds (from its file descriptors' fdinfo): other
    tests running alongside load programs with the same names."""
    ids = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                ids.update(re.findall(r"^prog_id:\s*(\d+)$", info.read(), re.MULTILINE))
        except OSError:
            pass
    return ids


def start(tmp_path) -> subprocess.Popen:
    bundle = tmp_path / "p.bpfb"
    subprocess.run([BIN / "bpftc", "-e", PROGRAM, "-o", bundle], check=True)
    runner = subprocess.Popen([BIN / "bpfrun", bundle], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert runner.stderr.readline() == "Attached 3 probes\n"
    assert len(programs_of(runner.pid)) == 3, "the programs should be loaded while bpfrun runs"
    return runner


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_nothing_stays_loaded_after_a_signal(tmp_path, how):
    runner = start(tmp_path)
    loaded = programs_of(runner.pid)
    time.sleep(0.2)
    runner.send_signal(how)
    stdout, _ = runner.communicate(timeout=10)
    if how == signal.SIGKILL:
        assert runner.returncode == -signal.SIGKILL
    else:
        assert runner.returncode == 0
        assert stdout.startswith("end\n\n\n@[")
    deadline = time.monotonic() + 5
    while loaded & our_programs() and time.monotonic() < deadline:
        time.sleep(0.05)  # the kernel frees programs of a killed process asynchronously
    assert loaded & our_programs() == set()
