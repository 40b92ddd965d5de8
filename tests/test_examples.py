"""Every example compiles, without privileges; the two README examples run for real."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.bpfrun_run import programs_loaded, wait_unloaded
from tests.runtime.harness import BIN, ROOT, kernel_has_kprobes, run_case, Case

EXAMPLES = sorted((ROOT / "examples").glob("*.bt"))
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="loads BPF programs: needs root")


def test_there_are_examples():
    assert {path.name for path in EXAMPLES} >= {"read.bt", "read_tp.bt"}


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_compiles(example, tmp_path):
    out = tmp_path / "out.bpfb"
    result = subprocess.run([BIN / "bpftc", example, "-o", out], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:4] == b"BPFB"


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_compiles_as_an_unprivileged_user(example):
    if os.geteuid() != 0:
        command = [BIN / "bpftc", "-", "-o", "-"]
    elif subprocess.run([*NOBODY, "test", "-x", BIN / "bpftc", "-a", "-r", example]).returncode == 0:
        command = [*NOBODY, BIN / "bpftc", "-", "-o", "-"]
    else:
        pytest.skip("the checkout is not readable by user nobody")
    result = subprocess.run(command, stdin=example.open("rb"), capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout[:4] == b"BPFB"


@root_only
def test_read_bt_fails_to_attach_without_kprobes_and_leaves_nothing(tmp_path):
    if kernel_has_kprobes():
        pytest.skip("this kernel has kprobes")
    bundle = tmp_path / "read.bpfb"
    subprocess.run([BIN / "bpftc", ROOT / "examples" / "read.bt", "-o", bundle], check=True)
    before = programs_loaded()
    result = subprocess.run([BIN / "bpfrun", bundle], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stdout == ""
    assert re.fullmatch(
        r"bpfrun: ERROR: .*kprobe:sys_read.*kprobes are not available on this kernel.*\n", result.stderr
    )
    assert wait_unloaded(before) == set()


@root_only
def test_read_tp_histogram_counts_every_read_while_it_ran(tmp_path):
    bundle = tmp_path / "read_tp.bpfb"
    subprocess.run([BIN / "bpftc", ROOT / "examples" / "read_tp.bt", "-o", bundle], check=True)
    case = Case("read_tp", workload=500, stop="sigint", timeout=30)
    _, run = run_case(case, [str(BIN / "bpfrun"), str(bundle)], compile_first=False)
    assert run.exit_code == 0, run.stderr
    histogram = re.search(r"^@times:\n((?:.+\n)+)\n", run.stdout, re.MULTILINE)
    assert histogram, run.stdout
    rows = histogram.group(1).splitlines()
    for row in rows:
        assert re.fullmatch(r"(\[\d+[KMG]?, \d+[KMG]?\)|\[\d\]) +\d+ \|[@ ]{52}\|", row), row
        assert len(row) == 79
    total = sum(int(row[16:24]) for row in rows)
    # Other processes read too while it runs: at least the workload's 500 reads were measured.
    assert total >= 500


@root_only
def test_running_bpfrun_maps_no_llvm(tmp_path):
    bundle = tmp_path / "wait.bpfb"
    subprocess.run([BIN / "bpftc", "-e", "interval:s:30 { exit(); }", "-o", bundle], check=True)
    runner = subprocess.Popen([BIN / "bpfrun", bundle], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert runner.stderr.readline().startswith("Attached ")
        maps = Path(f"/proc/{runner.pid}/maps").read_text()
        assert "libbpf" in maps  # it is the loader that is running
        assert not re.search(r"llvmlite|libLLVM|lark", maps, re.IGNORECASE)
    finally:
        runner.send_signal(signal.SIGINT)
        runner.wait(timeout=10)


@root_only
def test_execs_example_lists_a_program_started(tmp_path):
    """examples/execs.bt (preprocessor lines, a wildcard probe reading each syscall's args): the
    program started while it runs, with its arguments and its parent."""
    bundle = tmp_path / "execs.bpfb"
    subprocess.run([BIN / "bpftc", ROOT / "examples" / "execs.bt", "-o", bundle], check=True)
    runner = subprocess.Popen([BIN / "bpfrun", bundle], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert runner.stderr.readline() == "Attached 3 probes\n"
    child = subprocess.run(["/bin/echo", "bpftc-example", "two words"], capture_output=True)
    runner.send_signal(signal.SIGINT)
    stdout, stderr = runner.communicate(timeout=20)
    assert stdout.splitlines()[0] == "TIME     PID     PPID    ARGS"
    started = [line for line in stdout.splitlines() if line.endswith("/bin/echo bpftc-example two words")]
    assert len(started) == 1 and child.returncode == 0, stdout + stderr
    assert re.fullmatch(rf"\d\d:\d\d:\d\d \d+ +{os.getpid()} +/bin/echo bpftc-example two words", started[0]), started


# bpftrace's own tools, where this machine has them: the oracle's chroot holds Debian's bpftrace
# package (../shared/tools/bpftrace-oracle builds it once per machine), /usr/sbin/*.bt.
BPFTRACE_TOOLS = sorted(Path("/var/cache/bpftrace-oracle/usr/sbin").glob("*.bt"))


@pytest.mark.skipif(not BPFTRACE_TOOLS, reason="no bpftrace tools on this machine (the oracle's chroot)")
@pytest.mark.parametrize("tool", BPFTRACE_TOOLS, ids=[path.name for path in BPFTRACE_TOOLS])
def test_bpftraces_own_tools_compile(tool, tmp_path):
    """Scripts written for bpftrace as its authors write them (#! and preprocessor lines, config
    missing_probes, wildcard probes reading args, kernel structs and enums) compile to bundles."""
    result = subprocess.run([BIN / "bpftc", tool, "-o", tmp_path / "tool.bpfb"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
