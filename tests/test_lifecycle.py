"""Nothing of a run stays in the kernel, however bpfrun ends: exit(), SIGINT, SIGTERM or SIGKILL."""

from __future__ import annotations

import json
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


def objects_of(pid: int) -> dict[str, set[str]]:
    """Ids of the BPF programs, links and maps process `pid` holds (from its file descriptors'
    fdinfo): other tests running alongside load programs with the same names."""
    ids: dict[str, set[str]] = {"prog": set(), "link": set(), "map": set()}
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                text = info.read()
        except OSError:
            continue
        for kind in ids:
            ids[kind].update(re.findall(rf"^{kind}_id:\s*(\d+)$", text, re.MULTILINE))
    return ids


def loaded_ids(kind: str) -> set[str]:
    """What bpftool lists of `kind` (prog, link or map)."""
    listing = subprocess.run(["bpftool", "-j", kind, "show"], capture_output=True, text=True, check=True).stdout
    return {str(entry["id"]) for entry in json.loads(listing or "[]")}


def programs_of(pid: int) -> set[str]:
    return objects_of(pid)["prog"]


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
    held = objects_of(runner.pid)
    assert held["link"] and held["map"], held
    time.sleep(0.2)
    runner.send_signal(how)
    stdout, _ = runner.communicate(timeout=10)
    if how == signal.SIGKILL:
        assert runner.returncode == -signal.SIGKILL
    else:
        assert runner.returncode == 0
        assert stdout.startswith("end\n\n\n@[")
    deadline = time.monotonic() + 5
    remaining = held
    while any(remaining.values()) and time.monotonic() < deadline:
        time.sleep(0.05)  # the kernel frees the objects of a killed process asynchronously
        remaining = {kind: ids & loaded_ids(kind) for kind, ids in held.items()}
    assert remaining == {"prog": set(), "link": set(), "map": set()}
