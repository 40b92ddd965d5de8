"""Every probe kind this kernel has, and bpfrun's run-time options, against real workloads.

The workloads are exact: a Python process that calls getpid() or getppid() N times. Its pid goes
to the program as $1 or through -p, so that other processes do not count.
"""

from __future__ import annotations


import re
import signal
import subprocess

import time
from pathlib import Path

from tests.bpfrun_run import (
    BPFTC,
    bpfrun_command,
    compile_program,
    needs_bpf,
    programs_loaded,
    trace_workload,
    wait_unloaded,
)

pytestmark = needs_bpf
PYTHON = "/usr/bin/python3"


def run(bundle: Path, *arguments: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(bpfrun_command(*arguments, bundle) if arguments and arguments[0].startswith("-") else
                          bpfrun_command(bundle, *arguments), capture_output=True, text=True, timeout=timeout)  # fmt: skip


def traced_loop(bundle: Path, calls: str, count: int, *options: str) -> subprocess.CompletedProcess:
    """Run bpfrun on `bundle` while a process makes `count` calls of os.CALLS(), 5 ms apart, once
    the probes are attached; the process's pid is $1, and -p too when `options` ask for it."""
    return trace_workload(bundle, f"for _ in range({count}): os.{calls}(); time.sleep(0.005)", *options)


def test_uprobe_and_uretprobe_on_a_library_function(tmp_path: Path) -> None:
    program = (
        "uprobe:libc:getpid /pid == $1/ { @calls = count(); } "
        "uretprobe:libc:getpid /pid == $1/ { @returned_own_pid[retval == $1] = count(); }"
    )
    result = traced_loop(compile_program(program, tmp_path / "u.bpfb"), "getpid", 9)
    assert result.stdout == "\n\n@calls: 9\n@returned_own_pid[true]: 9\n", result.stderr


def test_uprobe_on_a_path_and_its_missing_function(tmp_path: Path) -> None:
    libc = "/lib/x86_64-linux-gnu/libc.so.6"
    result = traced_loop(
        compile_program(f"uprobe:{libc}:getpid /pid == $1/ {{ @ = count(); }}", tmp_path / "p.bpfb"), "getpid", 3
    )
    assert result.stdout == "\n\n@: 3\n", result.stderr
    missing = run(compile_program(f"uprobe:{libc}:no_such_function {{ }}", tmp_path / "m.bpfb"))
    assert missing.returncode == 1 and missing.stderr.startswith("bpfrun: ERROR: cannot attach uprobe:")


def test_rawtracepoint_arguments(tmp_path: Path) -> None:
    # sys_enter's arguments are (struct pt_regs *, long id); getppid is syscall 110 on x86_64.
    program = "rawtracepoint:sys_enter /pid == $1 && arg1 == 110/ { @getppid = count(); }"
    result = traced_loop(compile_program(program, tmp_path / "r.bpfb"), "getppid", 6)
    assert result.stdout == "\n\n@getppid: 6\n", result.stderr


def test_profile_software_and_interval_probes_fire(tmp_path: Path) -> None:
    program = (
        "profile:hz:99 { @profile = count(); } software:cpu-clock:1000000 { @software = count(); } "
        'interval:ms:500 { printf("%d %d\\n", @profile > 0, @software > 0); exit(); }'
    )
    result = run(compile_program(program, tmp_path / "p.bpfb"))
    assert result.returncode == 0 and result.stdout.startswith("1 1\n"), result.stderr
    assert result.stderr == "Attached 3 probes\n"


def test_hardware_probe_fails_in_one_clear_line_without_counters(tmp_path: Path) -> None:
    result = run(compile_program("hardware:cpu-cycles:1000000 { @ = count(); }", tmp_path / "h.bpfb"))
    if result.returncode == 0:
        return  # this machine has a PMU: the probe attached
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("bpfrun: ERROR: cannot attach hardware:cpu-cycles:1000000: perf_event_open: ")


def test_self_signal_probe_runs_once_per_sigusr1(tmp_path: Path) -> None:
    bundle = compile_program('self:signal:SIGUSR1 { printf("%s\\n", probe); }', tmp_path / "s.bpfb")
    tracer = subprocess.Popen(bpfrun_command(bundle), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert tracer.stderr.readline() == "Attached 1 probe\n"
    for _ in range(2):
        tracer.send_signal(signal.SIGUSR1)
        time.sleep(0.3)
    tracer.send_signal(signal.SIGINT)
    stdout, _ = tracer.communicate(timeout=20)
    assert stdout == "self:signal:SIGUSR1\nself:signal:SIGUSR1\n\n\n"


def test_pid_option_scopes_probes_to_one_process(tmp_path: Path) -> None:
    bundle = compile_program("tracepoint:syscalls:sys_enter_getppid { @[pid == $1] = count(); }", tmp_path / "p.bpfb")
    result = traced_loop(bundle, "getppid", 7, "-p", "{pid}")
    assert result.stdout == "\n\n@[true]: 7\n", result.stderr


def test_command_option_traces_the_command_until_it_exits(tmp_path: Path) -> None:
    bundle = compile_program(
        "tracepoint:syscalls:sys_enter_getppid /pid == cpid/ { @calls = count(); }", tmp_path / "c.bpfb"
    )
    command = f"{PYTHON} -c 'import os; [os.getppid() for _ in range(4)]'"
    result = subprocess.run(bpfrun_command("-c", command, bundle), capture_output=True, text=True, timeout=20)
    assert (result.returncode, result.stdout, result.stderr) == (0, "\n\n@calls: 4\n", "Attached 1 probe\n")


def test_output_file_and_quiet(tmp_path: Path) -> None:
    bundle = compile_program('begin { printf("to the file\\n"); @x = 1; exit(); }', tmp_path / "o.bpfb")
    output = tmp_path / "out.txt"
    result = subprocess.run(bpfrun_command("-q", "-o", output, bundle), capture_output=True, text=True, timeout=20)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert output.read_text() == "to the file\n\n\n@x: 1\n"
    missing = subprocess.run(bpfrun_command("-o", "/no/such/dir/x", bundle), capture_output=True, text=True)
    assert missing.returncode == 1 and missing.stderr.startswith("bpfrun: ERROR: cannot write /no/such/dir/x")


def test_positional_parameters_from_the_command_line(tmp_path: Path) -> None:
    bundle = compile_program('begin { printf("%d %s %d\\n", $1 * 2, str($2), $#); exit(); }', tmp_path / "a.bpfb")
    result = subprocess.run(bpfrun_command(bundle, "21", "text"), capture_output=True, text=True, timeout=20)
    assert result.stdout == "42 text 2\n\n\n"
    bad = subprocess.run(bpfrun_command(bundle, "x21"), capture_output=True, text=True, timeout=20)
    assert (bad.returncode, bad.stderr) == (1, "bpfrun: ERROR: positional parameter $1 is not an integer: 'x21'\n")


def test_list_what_the_host_can_attach_to() -> None:
    def listing(*pattern: str) -> list[str]:
        result = subprocess.run(bpfrun_command("-l", *pattern), capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    # The same names, aliases included, as bpftrace 0.27 lists.
    assert listing("software:*") == [
        "software:alignment-faults:", "software:bpf-output:", "software:context-switches:", "software:cpu-clock:",
        "software:cpu-migrations:", "software:cpu:", "software:cs:", "software:dummy:", "software:emulation-faults:",
        "software:faults:", "software:major-faults:", "software:minor-faults:", "software:page-faults:",
        "software:task-clock:",
    ]  # fmt: skip
    assert "tracepoint:syscalls:sys_enter_read" in listing("tracepoint:syscalls:sys_enter_rea*")
    assert "rawtracepoint:vmlinux:sys_enter" in listing()
    assert "uprobe:/lib/x86_64-linux-gnu/libc.so.6:getpid" in listing("uprobe:/lib/x86_64-linux-gnu/libc.so.6:getp*")
    missing = subprocess.run(bpfrun_command("-l", "uprobe:/no/such/file:*"), capture_output=True, text=True)
    assert (missing.returncode, missing.stderr) == (
        1,
        "bpfrun: ERROR: cannot read /no/such/file: No such file or directory\n",
    )


def test_tracepoint_wildcard_names_the_tracepoint_that_fired(tmp_path: Path) -> None:
    # sys_enter_getp* matches getpid, getppid, getpgid and getpgrp on this kernel: four probes
    # running one program, each firing under its own name.
    program = "tracepoint:syscalls:sys_enter_getp* /pid == $1/ { @[probe] = count(); }"
    bundle = compile_program(program, tmp_path / "w.bpfb")
    result = traced_loop(bundle, "getppid", 5)
    matching = list(Path("/sys/kernel/tracing/events/syscalls").glob("sys_enter_getp*"))  # mounted by now
    assert result.stderr.startswith(f"Attached {len(matching)} probes\n"), result.stderr
    assert result.stdout == "\n\n@[tracepoint:syscalls:sys_enter_getppid]: 5\n", result.stderr
    missing = run(compile_program("tracepoint:syscalls:no_such_thing* { }", tmp_path / "m.bpfb"))
    assert missing.returncode == 1
    assert missing.stderr == "bpfrun: ERROR: cannot attach tracepoint:syscalls:no_such_thing*: no tracepoint matches it\n"


def test_fentry_and_fexit_count_calls_or_fail_in_one_line(tmp_path: Path) -> None:
    """fentry/fexit attach where the kernel has BPF trampolines; this machine's kernel refuses to
    load them (EPERM), which must be one line naming the probe, with nothing left loaded."""
    program = "fentry:vfs_read { @entry = count(); } kretfunc:vmlinux:vfs_read { @exit = count(); }"
    bundle = compile_program(program, tmp_path / "f.bpfb")
    before = programs_loaded()
    result = traced_loop(bundle, "getppid", 1)  # reads happen all the time, bpfrun's own included
    if result.returncode == 0:
        assert re.fullmatch(r"\n\n@entry: [1-9][0-9]*\n@exit: [1-9][0-9]*\n", result.stdout), result.stderr
    else:
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("bpfrun: ERROR: cannot load fentry:vmlinux:vfs_read: "), result.stderr
    assert not wait_unloaded(before)


def test_fentry_on_a_function_without_btf_is_refused_before_loading(tmp_path: Path) -> None:
    # Syscall wrappers are kernel symbols without BTF: libbpf could not attach to them.
    for function in ("__x64_sys_getppid", "no_such_function_at_all"):
        result = run(compile_program(f"fentry:{function} {{ }}", tmp_path / "f.bpfb"))
        assert result.returncode == 1
        assert result.stderr == f"bpfrun: ERROR: cannot attach fentry:vmlinux:{function}: no such kernel function with BTF\n"


def _libc_address(function: str) -> int:
    """`function`'s address in libc's file: where this process has it, less where libc starts."""
    import ctypes

    loaded = ctypes.cast(getattr(ctypes.CDLL("libc.so.6"), function), ctypes.c_void_p).value
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if fields[-1].endswith("/libc.so.6") and int(fields[2], 16) == 0:
                return loaded - int(fields[0].split("-")[0], 16)
    raise AssertionError("libc is not mapped")


def test_uprobe_wildcards_offsets_and_addresses(tmp_path: Path) -> None:
    # getcwd starts with `push r15` (2 bytes): +2 is the start of an instruction, as it must be.
    program = (
        "uprobe:libc:getcw* /pid == $1/ { @[probe, func] = count(); } "
        'uprobe:libc:getcwd+2 /pid == $1/ { @offset = count(); @in[func, reg("ip") > 0] = count(); } '
        f"uprobe:libc:{hex(_libc_address('getcwd'))} /pid == $1/ {{ @address = count(); }}"
    )
    result = traced_loop(compile_program(program, tmp_path / "w.bpfb"), "getcwd", 3)
    assert result.stdout == (
        "\n\n@[uprobe:libc:getcwd, getcwd]: 3\n@address: 3\n@in[getcwd, true]: 3\n@offset: 3\n"
    ), result.stderr
    missing = run(compile_program("uprobe:libc:no_such_function_* { }", tmp_path / "m.bpfb"))
    assert (missing.returncode, missing.stderr) == (
        1, "bpfrun: ERROR: cannot attach uprobe:libc:no_such_function_*: no function matches it\n"
    )  # fmt: skip


def test_kprobe_offsets_modules_and_wildcards_compile(tmp_path: Path) -> None:
    """They compile; on a kernel without kprobes bpfrun refuses them in one line."""
    bundle = compile_program("kprobe:vfs_rea* { } kprobe:vfs_read+8 { } kprobe:ext4:ext4_sync_fs { }", tmp_path / "k.bpfb")
    result = run(bundle)
    if not Path("/sys/bus/event_source/devices/kprobe").exists():
        assert result.returncode == 1 and result.stderr.endswith(
            "kprobes are not available on this kernel (CONFIG_KPROBES is off)\n"
        ), result.stderr
        assert result.stderr.count("\n") == 1
    refused = subprocess.run([BPFTC, "-e", "kretprobe:vfs_read+8 { }", "-o", "-"], capture_output=True, text=True)
    assert "ERROR: Offset not allowed for kretprobe" in refused.stderr


def test_usdt_arguments_in_registers_and_memory(tmp_path: Path) -> None:
    """Python's own static probes (behind semaphores, which the kernel counts up while attached):
    gc__start has its generation in memory (`-4@112(%rsp)`), import__find__load__start the
    module's name in a register (`8@%rax`)."""
    python = "/usr/bin/python3.11"
    program = (
        f"usdt:{python}:python:gc__start /pid == $1/ {{ @generation[arg0] = count(); }} "
        f"usdt:{python}:import__find__load__start /pid == $1/ {{ @imported[str(arg0)] = count(); }}"
    )
    bundle = compile_program(program, tmp_path / "usdt.bpfb")
    workload = "import gc\nfor generation in (0, 1, 2, 2): gc.collect(generation)\nimport colorsys"
    result = trace_workload(bundle, workload, python=python)
    assert result.stderr.startswith("Attached 2 probes\n"), result.stderr
    stdout, stderr = result.stdout, result.stderr
    counts = dict(re.findall(r"^(@\w+\[\w+\]): (\d+)$", stdout, re.MULTILINE))
    assert counts["@imported[colorsys]"] == "1", stdout + stderr
    # Python may collect on its own too (at exit, generation 2): at least the explicit ones.
    assert int(counts["@generation[0]"]) >= 1 and int(counts["@generation[1]"]) >= 1, stdout
    assert int(counts["@generation[2]"]) >= 2, stdout
    listed = subprocess.run(bpfrun_command("-l", f"usdt:{python}:*gc*"), capture_output=True, text=True).stdout
    assert listed == f"usdt:{python}:python:gc__done\nusdt:{python}:python:gc__start\n"


@needs_bpf
def test_usermode_tells_user_code_from_the_kernel(tmp_path: Path) -> None:
    """A process spinning in Python is sampled in user mode; a syscall tracepoint fires in the
    kernel; begin runs on bpfrun's behalf in user mode (as bpftrace's, a uprobe on itself)."""
    program = (
        "begin { printf(\"begin %d\\n\", usermode); } "
        "profile:hz:997 /pid == $1/ { @sampled[usermode] = count(); } "
        "tracepoint:syscalls:sys_enter_getppid /pid == $1/ { @syscall[usermode] = count(); }"
    )
    workload = "end = time.time() + 0.5\nwhile time.time() < end: pass\nos.getppid()"
    result = trace_workload(compile_program(program, tmp_path / "u.bpfb"), workload)
    lines = result.stdout.splitlines()
    assert lines[0] == "begin 1" and "@syscall[0]: 1" in lines, result.stdout + result.stderr
    sampled = {int(key): int(count) for key, count in re.findall(r"@sampled\[(\d)\]: (\d+)", result.stdout)}
    assert sampled.get(1, 0) > 10 * sampled.get(0, 0), result.stdout  # mostly in the interpreter's own code


def test_an_interval_given_as_a_parameter(tmp_path: Path) -> None:
    """interval:ms:$1: one bundle, the rate given to bpfrun; a rate that is not a positive integer
    is one line, before anything is attached."""
    bundle = compile_program('interval:ms:$1 { printf("%s\\n", probe); exit(); }', tmp_path / "i.bpfb")
    started = time.monotonic()
    ran = subprocess.run(bpfrun_command(bundle, "300"), capture_output=True, text=True, timeout=20)
    assert (ran.returncode, ran.stdout) == (0, "interval:ms:300\n\n\n") and time.monotonic() - started >= 0.3, ran.stderr
    for bad in ("0", "x"):
        refused = subprocess.run(bpfrun_command(bundle, bad), capture_output=True, text=True, timeout=20)
        assert refused.returncode == 1 and refused.stdout == "" and len(refused.stderr.splitlines()) == 1, refused.stderr


def test_uaddr_is_the_symbols_address_in_the_traced_process(tmp_path: Path) -> None:
    """uaddr("NAME") in a uprobe of libc: NAME's address in the process the probe fired in
    (libc loaded wherever ASLR put it), as the process itself sees it (dlsym)."""
    program = 'uprobe:libc:getppid /pid == $1/ { printf("%p %p\\n", uaddr("getppid"), uaddr("getpid")); }'
    addresses = tmp_path / "addresses"
    workload = (
        "import ctypes\nlibc = ctypes.CDLL(None)\n"
        "where = [ctypes.cast(getattr(libc, name), ctypes.c_void_p).value for name in ('getppid', 'getpid')]\n"
        f"open('{addresses}', 'w').write(' '.join(hex(address) for address in where))\n"
        "os.getppid()"
    )
    result = trace_workload(compile_program(program, tmp_path / "a.bpfb"), workload)
    assert result.stdout.splitlines()[0] == addresses.read_text(), result.stdout + result.stderr


def test_uaddr_outside_a_uprobe_and_of_a_missing_symbol(tmp_path: Path) -> None:
    compiled = subprocess.run([BPFTC, "-e", 'begin { print(uaddr("main")); }', "-o", tmp_path / "x.bpfb"], capture_output=True, text=True)
    assert compiled.stderr.splitlines()[0] == 'stdin:1:15-28: ERROR: uaddr can not be used with "begin" probes'
    bundle = compile_program('uprobe:libc:getppid { print(uaddr("no_such_symbol_here")); }', tmp_path / "m.bpfb")
    refused = subprocess.run(bpfrun_command(bundle), capture_output=True, text=True, timeout=20)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr.startswith('bpfrun: ERROR: uaddr("no_such_symbol_here"): no symbol of that name in /')


def test_config_missing_probes_skips_what_the_host_lacks(tmp_path: Path) -> None:
    """missing_probes = warn (or ignore): an attach point this host lacks is skipped, saying so
    (or not); its program is not even loaded. error, the default: refused. Nothing left: refused."""
    probes = "tracepoint:syscalls:sys_enter_nothere, begin { print(\"x\"); exit(); }"
    for setting, warning in (("warn", "WARNING: cannot attach tracepoint:syscalls:sys_enter_nothere: no such tracepoint. Skipping.\n"), ("ignore", "")):
        bundle = compile_program(f"config = {{ missing_probes = {setting} }} {probes}", tmp_path / f"{setting}.bpfb")
        ran = subprocess.run(bpfrun_command(bundle), capture_output=True, text=True, timeout=20)
        assert (ran.returncode, ran.stdout, ran.stderr) == (0, "x\n\n\n", warning + "Attached 1 probe\n")
    refused = subprocess.run(bpfrun_command(compile_program(probes, tmp_path / "e.bpfb")), capture_output=True, text=True)
    assert (refused.returncode, refused.stderr) == (1, "bpfrun: ERROR: cannot attach tracepoint:syscalls:sys_enter_nothere: no such tracepoint\n")
    nothing = compile_program('config = { missing_probes = ignore } tracepoint:syscalls:sys_enter_nothere { exit(); }', tmp_path / "n.bpfb")
    ran = subprocess.run(bpfrun_command(nothing), capture_output=True, text=True, timeout=20)
    assert (ran.returncode, ran.stderr) == (1, "bpfrun: ERROR: No probes to attach\n")


def test_uprobe_on_a_function_of_several_symbol_versions(tmp_path: Path) -> None:
    """libc's pthread_create has two versioned symbols at one address (GLIBC_2.2.5, GLIBC_2.34):
    bpfrun finds the function itself (libbpf 1.1 refused it: "Unknown error 4001")."""
    program = "uprobe:libc:pthread_create /pid == $1/ { @created = count(); }"
    workload = "import threading\nfor _ in range(3):\n    t = threading.Thread(target=lambda: None); t.start(); t.join()"
    result = trace_workload(compile_program(program, tmp_path / "t.bpfb"), workload)
    assert result.stdout == "\n\n@created: 3\n", result.stderr
