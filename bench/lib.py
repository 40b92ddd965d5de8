"""What the benchmarks share: the two tools, running them, the kernel's BPF accounting, the
workload, statistics and tables. Python's standard library only (runs as root, see README.md)."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BPFTC = ROOT / ".venv" / "bin" / "bpftc"
BPFRUN = ROOT / ".venv" / "bin" / "bpfrun"
ORACLE = ROOT.parent / "shared" / "tools" / "bpftrace-oracle"

OURS = "bpftc"  # bpftc + bpfrun
THEIRS = "bpftrace"
INSTALLED = "bpfrun installed alone"  # bpfrun as Dockerfile.run installs it (see Tools.installed_bpfrun)
SETUP = "oracle set-up"  # the bpftrace wrapper with `true` in place of bpftrace

ENTER = "sys_enter_getppid"
EXIT = "sys_exit_getppid"
TP_ENTER = f"tracepoint:syscalls:{ENTER}"
TP_EXIT = f"tracepoint:syscalls:{EXIT}"

_SYS_GETPPID = {"x86_64": 110, "aarch64": 173, "riscv64": 173, "s390x": 64, "ppc64le": 64}
_LOST = re.compile(rb"Lost (\d+) events")


class BenchError(Exception):
    """A run that could not be measured; the message says why."""


# ---------------------------------------------------------------------------------------------
# The workload: getppid() through libc's syscall(), so that nothing caches it.


class Getppid:
    """Calls getppid() through syscall(2) n times, from this thread (this process's pid)."""

    def __init__(self) -> None:
        machine = platform.machine()
        if machine not in _SYS_GETPPID:
            raise BenchError(f"no getppid syscall number known for {machine}")
        self.number = _SYS_GETPPID[machine]
        self._syscall = ctypes.CDLL(None, use_errno=True).syscall

    def __call__(self, n: int) -> float:
        """Make n calls; returns the seconds they took."""
        call, number = self._syscall, self.number
        start = time.perf_counter()
        for _ in range(n):
            call(number)
        return time.perf_counter() - start


# The same loop in a child process, for benchmarks where this process has other work (reading the
# tool's output): it waits for one byte on stdin, makes N calls, prints the seconds they took.
WORKLOAD_CHILD = """
import ctypes, os, sys, time
n, number, cpu = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
if cpu >= 0:
    os.sched_setaffinity(0, {cpu})
call = ctypes.CDLL(None, use_errno=True).syscall
sys.stdin.buffer.read(1)
start = time.perf_counter()
for _ in range(n):
    call(number)
print(time.perf_counter() - start, flush=True)
"""


@contextlib.contextmanager
def pinned(cpu: int | None):
    """Run the block on one CPU (None: leave the affinity alone)."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def workload_cpu() -> int | None:
    """The CPU the workload runs on: the last one this process may use (None on one CPU)."""
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[-1] if len(cpus) > 1 else None


# ---------------------------------------------------------------------------------------------
# The tools.


@dataclass
class Finished:
    """One finished run of a tool, as the kernel accounted for it (wait4)."""

    status: int
    wall: float  # seconds from launch to exit
    user: float
    system: float
    maxrss_kib: int
    stdout: bytes
    stderr: bytes
    marks: dict[str, float] = field(default_factory=dict)  # name → seconds after launch
    end: float = 0.0  # time.monotonic() when it was reaped

    @property
    def cpu(self) -> float:
        return self.user + self.system

    @property
    def lost(self) -> int:
        return sum(int(n) for n in _LOST.findall(self.stderr))


# Every tool runs under this launcher, a small Python (-I -S) started for the purpose, which forks it,
# reaps it with wait4 and reports on a pipe: first "PID START", then "STATUS END USER SYSTEM MAXRSS".
# Why not fork the tool from this process: a child's peak RSS (ru_maxrss) counts the memory of the
# process it was forked from, so it could never read below this harness's own size; forked from the
# launcher it cannot read below the launcher's (about 8 MiB). START and END are CLOCK_MONOTONIC
# (time.monotonic(), the same clock here) just before the fork and just after the reaping, so the
# launcher's own start-up is in no figure.
LAUNCHER = """
import os, sys, time
report, argv = int(sys.argv[1]), sys.argv[2:]
start = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        os.close(report)
        os.execvp(argv[0], argv)
    except BaseException as error:
        os.write(2, f"cannot run {argv[0]}: {error}\\n".encode())
    os._exit(127)
os.write(report, f"{pid} {start}\\n".encode())
_, status, usage = os.wait4(pid, 0)
end = time.monotonic()
os.write(report, f"{os.waitstatus_to_exitcode(status)} {end} {usage.ru_utime} {usage.ru_stime} {usage.ru_maxrss}\\n".encode())
"""


class Running:
    """A tool's process, started through LAUNCHER: its output is read by threads (stderr always,
    stdout when piped) that note when a marker first appears; stop() ends it with a signal and
    returns the kernel's accounting of it."""

    def __init__(self, argv: list[str], stdout=subprocess.DEVNULL, stdout_marker: bytes | None = None,
                 environment: dict[str, str] | None = None) -> None:
        self.argv = argv
        self._marks: dict[str, float] = {}  # name → time.monotonic()
        self._stderr = bytearray()
        self._stdout = bytearray()
        self._attached = threading.Event()
        self._first = threading.Event()
        read_end, write_end = os.pipe()
        try:
            self.launcher = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", LAUNCHER, str(write_end), *argv], stdin=subprocess.DEVNULL,
                stdout=stdout, stderr=subprocess.PIPE, cwd="/", start_new_session=True, env=environment,
                pass_fds=(write_end,))
        finally:
            os.close(write_end)
        self._report = os.fdopen(read_end, "rb")
        self._finished: Finished | None = None
        first = self._report.readline().split()
        if len(first) != 2:
            self.launcher.wait()
            raise BenchError(f"cannot start {argv[0]}: {self.launcher.stderr.read().decode(errors='replace')}")
        self.pid, self.start = int(first[0]), float(first[1])
        self._threads = [threading.Thread(target=self._read_stderr, daemon=True)]
        if stdout == subprocess.PIPE:
            self._threads.append(threading.Thread(target=self._read_stdout, args=(stdout_marker,), daemon=True))
        for thread in self._threads:
            thread.start()

    def _read_stderr(self) -> None:
        for line in self.launcher.stderr:
            self._stderr += line
            if b"Attached" in line and not self._attached.is_set():
                self._marks["attached"] = time.monotonic()
                self._attached.set()
        self._attached.set()  # the end of stderr: nothing more will come

    def _read_stdout(self, marker: bytes | None) -> None:
        stream = self.launcher.stdout
        while chunk := stream.read1(1 << 20):
            self._stdout += chunk
            if marker is not None and not self._first.is_set() and marker in self._stdout:
                self._marks["first event"] = time.monotonic()
                self._first.set()
        self._first.set()

    def alive(self) -> bool:
        """Whether the tool still runs (it is reaped by the launcher as soon as it exits)."""
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X") and self.launcher.poll() is None

    def wait_attached(self, timeout: float = 60.0, tracepoints: tuple[str, ...] = ()) -> None:
        """Until the tool says `Attached N probes` (both tools do, on stderr, once attached, in
        text mode) or, given `tracepoints`, until it holds links to all of them (any mode)."""
        if tracepoints:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.alive():
                if all(t in attached_programs(self.pid) for t in tracepoints):
                    self._marks["attached"] = time.monotonic()
                    return
                time.sleep(0.005)
        elif self._attached.wait(timeout) and "attached" in self._marks:
            return
        self.stop(signal.SIGKILL)
        raise BenchError(f"{self.argv[0]} did not attach: {bytes(self._stderr).decode(errors='replace')[-500:]}")

    def first_event_seen(self) -> bool:
        return self._first.is_set()

    def cpu_times(self) -> tuple[float, float]:
        """(user, system) CPU seconds the tool has used so far, its threads included (clock ticks)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def send(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def stop(self, sig: int | None = signal.SIGINT, timeout: float = 120.0) -> Finished:
        """Send sig (None: send nothing, wait for the tool to exit by itself), wait until it is
        reaped, return what the kernel accounted. Past the timeout the tool is killed and
        BenchError raised. Stopping a tool again (a failed wait_attached stopped it) returns what
        the first stop returned."""
        if self._report.closed:
            if self._finished is None:
                raise BenchError(f"{self.argv[0]} was already stopped")
            return self._finished
        if sig is not None:
            self.send(sig)
        killer = threading.Timer(timeout, self.send, (signal.SIGKILL,))
        killer.start()
        try:
            last = self._report.readline().split()
        finally:
            killer.cancel()
        self.launcher.wait()
        self._report.close()
        for thread in self._threads:
            thread.join(10)
        if len(last) != 5:
            raise BenchError(f"the launcher of {self.argv[0]} failed: {bytes(self._stderr).decode(errors='replace')[-300:]}")
        status, end = int(last[0]), float(last[1])
        marks = {name: moment - self.start for name, moment in self._marks.items()}
        finished = self._finished = Finished(status, end - self.start, float(last[2]), float(last[3]), int(last[4]),
                                             bytes(self._stdout), bytes(self._stderr), marks, end)
        if status == -signal.SIGKILL and sig != signal.SIGKILL:
            raise BenchError(f"{self.argv[0]} did not exit within {timeout:.0f} s and was killed")
        return finished


class Tools:
    """How each side is run. bpftc compiles a program once (cached) into a bundle in a private
    directory; its side of every measurement is bpfrun on that bundle. bpftrace compiles on
    every start, as it always does."""

    def __init__(self, bpftrace: str | None = None) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="bpftc-bench-"))
        os.chmod(self.directory, 0o755)
        self._bundles: dict[str, Path] = {}
        self.bpftrace = bpftrace or (str(ORACLE) if ORACLE.exists() else shutil.which("bpftrace"))
        if not self.bpftrace:
            raise BenchError("no bpftrace: give --bpftrace PATH")
        self.through_oracle = Path(self.bpftrace).name == "bpftrace-oracle"
        for program in (BPFTC, BPFRUN):
            if not program.exists():
                raise BenchError(f"{program} is missing: run ./dev.sh test (or dev.sh demo) once")
        self._setup_script: Path | None = None
        self._installed: Path | BenchError | None = None
        # The tools run as installed Python programs do: with their bytecode compiled once and
        # cached (here under the private directory, not in the checkout) and no PYTHON* variable
        # of this shell (PYTHONUNBUFFERED would slow bpfrun's output, PYTHONDONTWRITEBYTECODE
        # would make it compile every module at every start).
        self.environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        self.environment["PYTHONPYCACHEPREFIX"] = str(self.directory / "pycache")
        self._warm_up()

    def _warm_up(self) -> None:
        """Compile and run a program once, so that both tools' bytecode is cached."""
        bundle = self.bundle("BEGIN { exit(); }")
        for argv in ([str(BPFTC), "--help"], [str(BPFRUN), str(bundle)], [str(BPFRUN), "-f", "json", str(bundle)]):
            self.run_once(argv)

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def file(self, name: str, text: str) -> Path:
        """A file in the private directory (under /tmp, where the oracle's chroot sees it too)."""
        path = self.directory / name
        path.write_text(text)
        path.chmod(0o644)
        return path

    def bundle(self, program: str) -> Path:
        if program not in self._bundles:
            path = self.directory / f"p{len(self._bundles)}.bpfb"
            result = subprocess.run([str(BPFTC), "-", "-o", str(path)], input=program.encode(),
                                    capture_output=True, env=getattr(self, "environment", None))
            if result.returncode != 0:
                raise BenchError(f"bpftc cannot compile it: {result.stderr.decode(errors='replace').strip()}")
            self._bundles[program] = path
        return self._bundles[program]

    def argv(self, tool: str, program: str, arguments: list[str] = (), output_format: str = "text") -> list[str]:
        """The command that runs `program` with `tool`."""
        if tool == OURS:
            return [str(BPFRUN), "-f", output_format, str(self.bundle(program)), *arguments]
        if tool == INSTALLED:
            return [str(self.installed_bpfrun()), "-f", output_format, str(self.bundle(program)), *arguments]
        if tool == THEIRS:
            return [self.bpftrace, "-f", output_format, "-e", program, *arguments]
        raise ValueError(tool)

    def installed_bpfrun(self) -> Path:
        """bpfrun installed as Dockerfile.run installs it on a production host: its package alone
        (bpfrun/ and common/, packaging/bpfrun/pyproject.toml) with pip into a fresh virtualenv of
        Debian's python3, from this checkout's files. The checkout's own .venv is an editable
        install of both programs (the checkout's path in a .pth file), beside the compiler's
        dependencies; this one has bpfrun's alone. Built once per run; BenchError when pip cannot
        build it (no msgpack or click to be had)."""
        if self._installed is None:
            base = self.directory / "loader"
            source = base / "src"
            for name in ("bpfrun", "common"):
                shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
            shutil.copy(ROOT / "packaging" / "bpfrun" / "pyproject.toml", source / "pyproject.toml")
            venv = base / "venv"
            environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
            steps = (["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)],
                     [str(venv / "bin" / "pip"), "install", "--quiet", "--no-cache-dir", "--no-build-isolation",
                      str(source)])  # fmt: skip
            for step in steps:
                result = subprocess.run(step, capture_output=True, text=True, cwd=base, env=environment)
                if result.returncode != 0:
                    self._installed = BenchError(f"cannot install bpfrun alone: {result.stderr.strip()[-300:]}")
                    break
            else:
                self._installed = venv / "bin" / "bpfrun"
                self.run_once([str(self._installed), str(self.bundle("BEGIN { exit(); }"))])  # its bytecode
        if isinstance(self._installed, BenchError):
            raise self._installed
        return self._installed

    def setup_argv(self) -> list[str] | None:
        """The oracle wrapper with `true` in place of bpftrace: what its chroot and mount set-up
        costs (None when bpftrace does not run through the wrapper)."""
        if not self.through_oracle:
            return None
        if self._setup_script is None:
            text = Path(self.bpftrace).read_text()
            if text.count("exec bpftrace") != 1:
                return None
            self._setup_script = self.file("oracle-setup.sh", text.replace("exec bpftrace", "exec true"))
        return ["/bin/bash", str(self._setup_script)]

    def start(self, tool: str, program: str, arguments: list[str] = (), **options) -> Running:
        """Start `program` with `tool`; options: output_format, and Running's."""
        fmt = options.pop("output_format", "text")
        return self.spawn(self.argv(tool, program, list(arguments), fmt), **options)

    def spawn(self, argv: list[str], **options) -> Running:
        return Running(argv, environment=self.environment, **options)

    def run_once(self, argv: list[str], timeout: float = 300.0) -> Finished:
        """Run a command to its end (stdout discarded, stderr kept); the kernel's accounting of it."""
        return self.spawn(argv).stop(None, timeout)


# ---------------------------------------------------------------------------------------------
# The kernel's accounting of BPF programs.


@contextlib.contextmanager
def bpf_stats():
    """kernel.bpf_stats_enabled=1 for the block, restored afterwards (SIGTERM included)."""
    path = Path("/proc/sys/kernel/bpf_stats_enabled")
    before = path.read_text().strip()
    previous = signal.getsignal(signal.SIGTERM)

    def terminated(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminated)
    path.write_text("1\n")
    try:
        yield
    finally:
        path.write_text(before + "\n")
        signal.signal(signal.SIGTERM, previous)


def _fdinfo(pid: int, fd: str) -> dict[str, str]:
    info = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines():
            key, _, value = line.partition(":")
            info[key.strip()] = value.strip()
    return info


def attached_programs(pid: int) -> dict[str, int]:
    """The programs process `pid` holds attached to tracepoints: tracepoint name → program id,
    from its bpf_link file descriptors (the same for both tools, whatever they name things)."""
    found = {}
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:bpf_link":
                    continue
            info = _fdinfo(pid, fd)
            if "tp_name" in info and "prog_id" in info:
                found[info["tp_name"]] = int(info["prog_id"])
    return found


def bpftool(*arguments: str) -> str:
    return subprocess.run(["bpftool", *arguments], check=True, capture_output=True, text=True).stdout


def program_stats(ids: list[int]) -> dict[int, dict]:
    """`bpftool -j prog show id N` for each program: run_time_ns, run_cnt, bytes_xlated..."""
    return {prog_id: json.loads(bpftool("-j", "prog", "show", "id", str(prog_id))) for prog_id in ids}


def xlated(prog_id: int) -> str:
    return bpftool("prog", "dump", "xlated", "id", str(prog_id))


def kernel_command() -> str:
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs"


# ---------------------------------------------------------------------------------------------
# Statistics and tables.


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or theirs is None or theirs <= 0:
        return None
    return ours / theirs


@dataclass
class Target:
    """A target on a ratio ours/theirs: at most (`<=`) or at least (`>=`) `value`."""

    op: str
    value: float

    def met(self, measured: float | None) -> bool | None:
        if measured is None:
            return None
        return measured <= self.value if self.op == "<=" else measured >= self.value

    def __str__(self) -> str:
        return f"{'≤' if self.op == '<=' else '≥'} {self.value:g}x"


def verdict(target: Target | None, measured: float | None) -> str:
    if target is None:
        return ""
    met = target.met(measured)
    return f"{target} " + {True: "met", False: "MISSED", None: "n/a"}[met]


def fmt(value, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value:,}{unit}"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells) -> None:
        self.rows.append([str(c) for c in cells])

    def text(self) -> str:
        widths = [max(len(c), *(len(r[i]) for r in self.rows)) if self.rows else len(c)
                  for i, c in enumerate(self.columns)]
        lines = [self.title, "=" * len(self.title)]
        lines.append("  ".join(c.ljust(w) for c, w in zip(self.columns, widths)))
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in self.rows]
        lines += [f"  * {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


@dataclass
class Options:
    quick: bool = False
    rounds: int = 5
    verbose: bool = False
    dump_dir: Path | None = None

    def log(self, message: str) -> None:
        if self.verbose:
            print(f"  .. {message}", flush=True)


def alternate(round_number: int) -> tuple[str, str]:
    """Which tool goes first: they take turns, round by round."""
    return (OURS, THEIRS) if round_number % 2 == 0 else (THEIRS, OURS)


# A script of 20 probes: 19 syscall tracepoints counting their events, and one that prints a line
# and exits when process $1 calls getppid() (the start-up benchmark's first event).
_NINETEEN = ["read", "write", "openat", "close", "newfstat", "mmap", "mprotect", "munmap", "brk", "ioctl",
             "pread64", "pwrite64", "readv", "writev", "access", "pipe2", "sched_yield", "dup", "nanosleep"]
TWENTY_PROBES = "".join(f"tracepoint:syscalls:sys_enter_{name} {{ @[probe] = count(); }}\n" for name in _NINETEEN) + (
    f'{TP_ENTER} / pid == $1 / {{ printf("first event\\n"); exit(); }}\n')


def main_for(name: str) -> None:
    """`python bench/NAME.py [OPTIONS]` is `python bench/run.py NAME [OPTIONS]`."""
    import sys

    import run

    sys.exit(run.main([name, *sys.argv[1:]]))


def rss_by_mapping(pid: int) -> dict[str, int]:
    """Resident KiB of a process by what is mapped: a file's name, [heap], [anon]..."""
    totals: dict[str, int] = {}
    name = "?"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if not parts[0].endswith(":"):  # a mapping's header: address perms offset dev inode [path]
            name = Path(parts[5]).name if len(parts) > 5 else "[anon]"
        elif parts[0] == "Rss:":
            totals[name] = totals.get(name, 0) + int(parts[1])
    return totals
