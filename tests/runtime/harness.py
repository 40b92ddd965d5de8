"""Runtime test cases in bpftrace's directive format, run by bpftc + bpfrun or by bpftrace itself.

A case file holds one or more cases separated by blank lines before NAME:

    NAME count reads of one process
    PROG tracepoint:syscalls:sys_enter_read /pid == {{WORKLOAD_PID}}/ { @[pid] = count(); }
    ARGS 42 foo                  positional parameters, after the bundle (or bpftrace's -e PROGRAM)
    WORKLOAD 25                  a process doing exactly 25 read() calls once the probes are attached
    STOP sigint                  how the run ends: sigint / sigterm (after the workload) or exit (default
                                 without WORKLOAD: the program exits by itself)
    EXPECT_STDOUT <<END          the whole standard output, up to a line END
    ...
    END
    EXPECT_JSON <<END            the whole standard output of a second run with `-f json`
    ...
    END
    EXPECT line                  a line that must be in standard output
    EXPECT_REGEX regex           must match some part of standard output
    EXPECT_STDERR_REGEX regex    must match some part of standard error
    EXIT_CODE n                  default 0
    TIMEOUT seconds              default 10
    NO_KPROBES                   only meaningful on a kernel without kprobes
    BPFTRACE_DIFFERS reason      bpftrace 0.27 prints something else on purpose: it is wrong by its own
                                 docs or by C, or this project keeps a 2017 spelling it dropped

`{{WORKLOAD_PID}}` anywhere is replaced by the workload's pid. The same file runs under bpftrace
(tests/runtime/oracle.py), which is how the expected text is checked against bpftrace 0.27.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WORKLOAD = Path(__file__).with_name("workload.py")
ORACLE = ROOT.parent / "shared" / "tools" / "bpftrace-oracle"


@dataclass
class Case:
    name: str
    program: str = ""
    args: list[str] = field(default_factory=list)
    workload: int | None = None
    stop: str = ""
    stdout: str | None = None
    json: str | None = None  # EXPECT_JSON: the case runs a second time, with -f json
    expect_lines: list[str] = field(default_factory=list)
    expect_regexes: list[str] = field(default_factory=list)
    stderr_regexes: list[str] = field(default_factory=list)
    exit_code: int = 0
    timeout: float = 10
    no_kprobes: bool = False
    bpftrace_differs: str = ""
    origin: str = ""


@dataclass
class Run:
    stdout: str
    stderr: str
    exit_code: int


def parse_cases(path: Path) -> list[Case]:
    cases: list[Case] = []
    lines = iter(path.read_text().split("\n"))
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        directive, _, value = line.partition(" ")
        if directive == "NAME":
            cases.append(Case(value, origin=f"{path.name}:{value}"))
            continue
        case = cases[-1]
        if directive == "PROG":
            case.program = value
        elif directive == "ARGS":
            case.args = value.split()
        elif directive == "WORKLOAD":
            case.workload = int(value)
        elif directive == "STOP":
            case.stop = value
        elif directive == "EXPECT_STDOUT":
            case.stdout = _block(lines, value.removeprefix("<<"))
        elif directive == "EXPECT_JSON":
            case.json = _block(lines, value.removeprefix("<<"))
        elif directive == "EXPECT":
            case.expect_lines.append(value)
        elif directive == "EXPECT_REGEX":
            case.expect_regexes.append(value)
        elif directive == "EXPECT_STDERR_REGEX":
            case.stderr_regexes.append(value)
        elif directive == "EXIT_CODE":
            case.exit_code = int(value)
        elif directive == "TIMEOUT":
            case.timeout = float(value)
        elif directive == "NO_KPROBES":
            case.no_kprobes = True
        elif directive == "BPFTRACE_DIFFERS":
            case.bpftrace_differs = value
        else:
            raise ValueError(f"{path}: unknown directive {directive!r}")
    return cases


def _block(lines, terminator: str) -> str:
    block = []
    for line in lines:
        if line == terminator:
            break
        block.append(line)
    return "".join(line + "\n" for line in block)


def json_variant(case: Case) -> Case | None:
    """The case's JSON run: the same program under `-f json`, expecting EXPECT_JSON as stdout."""
    if case.json is None:
        return None
    fields = dict(vars(case), stdout=case.json, json=None, expect_lines=[], expect_regexes=[])
    fields["origin"] = case.origin + " (json)"
    return Case(**fields)


def run_case(case: Case, tracer: list[str], compile_first: bool) -> tuple[Case, Run]:
    """Run `case` with the tracer command (bpfrun, or bpftrace through the oracle); a case from
    `json_variant` runs with `-f json`.

    Returns the case with {{WORKLOAD_PID}} filled in, and what the tracer printed."""
    if case.origin.endswith(" (json)"):
        tracer = [*tracer, "-f", "json"]
    workload = _start_workload(case.workload) if case.workload is not None else None
    try:
        case = _substitute(case, str(workload.pid) if workload else "")
        with tempfile.TemporaryDirectory() as directory:
            if compile_first:
                bundle, compile_errors = compile_program(case.program)
                if bundle is None:
                    return case, Run("", compile_errors, 1)
                bundle_path = Path(directory, "case.bpfb")
                bundle_path.write_bytes(bundle)
                command = [*tracer, str(bundle_path), *case.args]
            elif case.program:
                command = [*tracer, "-e", case.program, *case.args]
            else:
                command = tracer  # it names its own bundle or script
            return case, _trace(case, command, workload)
    finally:
        if workload is not None and workload.poll() is None:
            workload.kill()
            workload.wait()


@functools.lru_cache(maxsize=256)
def compile_program(program: str) -> tuple[bytes | None, str]:
    """bpftc's bundle for `program` and what it printed on stderr; compiled in this process (the
    compiler's start-up would dominate a run) and once for the text and JSON runs of a case."""
    from bpftc import OPAQUE_POINTERS

    os.environ.setdefault(*OPAQUE_POINTERS)  # before the compiler imports llvmlite
    from bpftc.diagnostics import render
    from bpftc.pipeline import compile_source
    from bpftc.source import Source

    source = Source("stdin", program)
    result = compile_source(source)
    return (None if result.diagnostics.has_errors else result.bundle), render(source, result.diagnostics)


def _start_workload(reads: int) -> subprocess.Popen:
    process = subprocess.Popen(["/usr/bin/python3", WORKLOAD, str(reads)], stdout=subprocess.PIPE)
    assert process.stdout.readline() == b"ready\n"
    return process


def _substitute(case: Case, pid: str) -> Case:
    def fill(text):
        return text.replace("{{WORKLOAD_PID}}", pid) if isinstance(text, str) else text

    return Case(
        **{
            name: [fill(item) for item in value] if isinstance(value, list) else fill(value)
            for name, value in vars(case).items()
        }
    )


def _trace(case: Case, command: list[str], workload: subprocess.Popen | None) -> Run:
    tracer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr_lines: list[str] = []
    attached = threading.Event()
    stdout_chunks: list[str] = []

    def read_stderr():
        for line in tracer.stderr:
            stderr_lines.append(line)
            if line.startswith("Attached "):
                attached.set()
        attached.set()  # the tracer ended: nothing to wait for

    def read_stdout():
        for line in tracer.stdout:
            stdout_chunks.append(line)
            if line.startswith('{"type": "attached_probes"'):  # -f json says it on stdout
                attached.set()

    readers = [threading.Thread(target=read_stderr, daemon=True), threading.Thread(target=read_stdout, daemon=True)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + case.timeout
    try:
        attached.wait(case.timeout)
        if workload is not None and tracer.poll() is None:
            workload.send_signal(signal.SIGUSR1)
            workload.wait(timeout=max(deadline - time.monotonic(), 0.1))
        stop = case.stop or ("sigint" if workload is not None else "exit")
        if stop in ("sigint", "sigterm") and tracer.poll() is None:
            tracer.send_signal(signal.SIGINT if stop == "sigint" else signal.SIGTERM)
        exit_code = tracer.wait(timeout=max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
        tracer.kill()
        tracer.wait()
        exit_code = -9
        stderr_lines.append(f"harness: TIMEOUT after {case.timeout} s\n")
    for reader in readers:
        reader.join(timeout=5)
    return Run("".join(stdout_chunks), "".join(stderr_lines), exit_code)


def mismatches(case: Case, run: Run) -> list[str]:
    """What differs between the run and the case's expectations (empty when it passed)."""
    problems = []
    if case.stdout is not None and run.stdout != case.stdout:
        problems.append(f"stdout differs:\n--- expected\n{case.stdout}--- got\n{run.stdout}---")
    for line in case.expect_lines:
        if line not in run.stdout.split("\n"):
            problems.append(f"no line {line!r} in stdout:\n{run.stdout}")
    for regex in case.expect_regexes:
        if not re.search(regex, run.stdout, re.MULTILINE):
            problems.append(f"stdout does not match {regex!r}:\n{run.stdout}")
    for regex in case.stderr_regexes:
        if not re.search(regex, run.stderr, re.MULTILINE):
            problems.append(f"stderr does not match {regex!r}:\n{run.stderr}")
    if run.exit_code != case.exit_code:
        problems.append(f"exit code {run.exit_code}, expected {case.exit_code}; stderr:\n{run.stderr}")
    return problems


def case_files() -> list[Path]:
    return sorted(Path(__file__).parent.glob("*.test"))


def kernel_has_kprobes() -> bool:
    return os.path.exists("/sys/bus/event_source/devices/kprobe") or os.path.exists("/sys/kernel/tracing/kprobe_events")
