"""Kernel data: tracepoint arguments, curtask and struct fields read through CO-RE relocations,
strings read from memory, against real workloads; and the CO-RE proof: a bundle compiled against
another kernel's layout (a BTF file of our own, fields elsewhere) reads the right values here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

from tests.bpfrun_run import BPFTC, bpfrun_command, compile_program, needs_bpf, trace_workload
from tests.compile import diagnostics_text

PYTHON = "/usr/bin/python3"


def traced(bundle: Path, workload: str, *options: str) -> subprocess.CompletedProcess:
    return trace_workload(bundle, workload, *options)


# Compile-time errors: no kernel needed


def test_a_missing_tracepoint_field_is_named_with_its_struct() -> None:
    text = diagnostics_text("tracepoint:syscalls:sys_enter_read { @x = args.nope; }")
    assert "ERROR: Struct/union of type 'struct tracepoint:syscalls:sys_enter_read_args' does not contain a field named 'nope'" in text  # noqa: E501
    assert "~~~~~~~~~" in text


def test_args_outside_the_probes_that_have_them() -> None:
    text = diagnostics_text("interval:s:1 { @x = args.fd; }")
    assert (
        "ERROR: The args builtin can only be used with tracepoint, rawtracepoint, fentry/fexit, and uprobe probes "
        "(interval used here)" in text
    )


def test_a_field_of_another_tracepoint_of_the_same_probe_must_exist() -> None:
    text = diagnostics_text("tracepoint:syscalls:sys_enter_read,tracepoint:syscalls:sys_enter_close { @x = args.count; }")
    assert "'struct tracepoint:syscalls:sys_enter_close_args' does not contain a field named 'count'" in text


def test_unknown_struct_and_field_of_a_kernel_struct() -> None:
    assert "Unknown struct/union: 'struct no_such_struct'" in diagnostics_text(
        "begin { @x = ((struct no_such_struct *)0)->a; }"
    )
    assert "Struct/union of type 'struct task_struct' does not contain a field named 'nope'" in diagnostics_text(
        "begin { @x = curtask->nope; }"
    )


# Runtime


@needs_bpf
def test_syscall_string_and_integer_arguments(tmp_path: Path) -> None:
    program = (
        "tracepoint:syscalls:sys_enter_openat /pid == $1/ { "
        'printf("%s %d\\n", str(args.filename), args.flags); @short[str(args.filename, 5)] = count(); '
        "@some_address = args.filename != 0; }"
    )
    workload = "for _ in range(3): os.close(os.open('/etc/hostname', os.O_RDONLY))"
    result = traced(compile_program(program, tmp_path / "o.bpfb"), workload)
    flags = os.O_RDONLY | os.O_CLOEXEC  # Python opens with O_CLOEXEC (PEP 446)
    assert result.stdout == f"/etc/hostname {flags}\n" * 3 + "\n\n@short[/etc]: 3\n@some_address: true\n", result.stderr


@needs_bpf
def test_fields_of_a_btf_tracepoint_and_a_data_loc_string(tmp_path: Path) -> None:
    # sched_switch's fields come from BTF (trace_event_raw_sched_switch); sched_process_exec's
    # filename is a __data_loc string.
    program = (
        "tracepoint:sched:sched_switch /args.prev_pid == $1/ { @switched_out[args.prev_comm] = count(); } "
        'tracepoint:sched:sched_process_exec /args.old_pid == $1/ { printf("exec %s\\n", str(args.filename)); }'
    )
    workload = "for _ in range(5): time.sleep(0.01)\nos.execv('/bin/true', ['true'])"
    result = traced(compile_program(program, tmp_path / "s.bpfb"), workload)
    lines = result.stdout.splitlines()
    assert lines[0] == "exec /bin/true", result.stdout + result.stderr
    # Switched out as python3 at each sleep at least, then maybe as true after the exec.
    assert _switches_of_python(lines) >= 5, result.stdout


def _switches_of_python(lines: list[str]) -> int:
    """The count printed for @switched_out[python3], 0 when not printed."""
    counts = [int(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("@switched_out[python3]: ")]
    return counts[0] if counts else 0


def _compile_against(tmp_path: Path, structs: dict, script: str) -> Path:
    """`script` compiled with bpftc --btf, a BTF file of `structs` (tests/synthetic_btf.py)."""
    from tests.synthetic_btf import build_btf

    btf = tmp_path / "other.btf"
    btf.write_bytes(build_btf(structs))
    (tmp_path / "script.bt").write_text(script)
    bundle = tmp_path / "script.bpfb"
    compiled = subprocess.run([BPFTC, "--btf", btf, tmp_path / "script.bt", "-o", bundle], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    return bundle


def _curtask_program() -> str:
    return 'begin { printf("%d %d %d %d\\n", curtask->pid == tid, curtask->tgid == pid, curtask->comm == comm, curtask->real_parent->tgid); exit(); }'  # noqa: E501


@needs_bpf
def test_curtask_fields_through_pointers(tmp_path: Path) -> None:
    result = subprocess.run(bpfrun_command(compile_program(_curtask_program(), tmp_path / "c.bpfb")), capture_output=True, text=True)  # noqa: E501
    assert result.stdout == f"1 1 1 {os.getpid()}\n\n\n", result.stderr


@needs_bpf
def test_a_bundle_compiled_for_another_layout_reads_this_kernel(tmp_path: Path) -> None:
    """The CO-RE proof: task_struct as bpftc sees it here has pid at 8, tgid at 12, comm at 16 and
    real_parent at 32 (this kernel has them around 2400 bytes further): only libbpf's relocation
    against this kernel's BTF makes the values right."""
    members = [("pid", 8, "int"), ("tgid", 12, "int"), ("comm", 16, "char[16]"), ("real_parent", 32, "pointer to task_struct")]  # noqa: E501
    bundle = _compile_against(tmp_path, {"task_struct": (64, members)}, _curtask_program())
    result = subprocess.run(bpfrun_command(bundle), capture_output=True, text=True)
    assert result.stdout == f"1 1 1 {os.getpid()}\n\n\n", result.stderr


@needs_bpf
def test_compiled_by_nobody_without_tracefs_then_run_as_root() -> None:
    """bpftc needs no privileges: as user nobody, in a mount namespace where tracefs is not
    mounted, it compiles tracepoint arguments from its syscall table and the kernel's BTF."""
    with tempfile.TemporaryDirectory() as directory:  # pytest's own is root's alone
        _compile_as_nobody_and_run(Path(directory))


def _compile_as_nobody_and_run(tmp_path: Path) -> None:
    script = tmp_path / "t.bt"
    script.write_text(
        'tracepoint:syscalls:sys_enter_openat /pid == $1/ { printf("%s\\n", str(args.filename)); } '
        "tracepoint:sched:sched_switch /args.prev_pid == $1/ { @switches = count(); }"
    )
    os.chmod(tmp_path, 0o777)
    script.chmod(0o644)
    compile_as_nobody = (
        "umount -l /sys/kernel/tracing 2>/dev/null; umount -l /sys/kernel/debug 2>/dev/null; "
        "test ! -e /sys/kernel/tracing/events && "
        f"HOME=/nonexistent setpriv --reuid=65534 --regid=65534 --clear-groups {BPFTC} {script} -o {tmp_path / 'n.bpfb'}"
    )
    compiled = subprocess.run(["unshare", "-m", "sh", "-c", compile_as_nobody], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    result = traced(tmp_path / "n.bpfb", "os.close(os.open('/etc/hostname', os.O_RDONLY))\ntime.sleep(0.01)")
    assert result.stdout.startswith("/etc/hostname\n\n\n@switches: "), result.stdout + result.stderr




# Stacks and symbols


@needs_bpf
def test_kernel_stacks_in_each_mode(tmp_path: Path) -> None:
    program = (
        "tracepoint:syscalls:sys_enter_getppid /pid == $1/ { "
        "@default[kstack] = count(); @perf[kstack(perf, 2)] = count(); @raw[kstack(raw)] = count(); }"
    )
    result = traced(compile_program(program, tmp_path / "k.bpfb"), "for _ in range(4): os.getppid()")
    blocks = result.stdout.split("]: ")
    default, perf, raw = (next(b for b in blocks if f"@{name}[" in b) for name in ("default", "perf", "raw"))
    default_frames = default.split("@default[\n", 1)[1].splitlines()
    assert all(re.fullmatch(r" {8}[\w.]+\+\d+", frame) for frame in default_frames), default
    assert default_frames[-1].startswith("        entry_SYSCALL_64"), default
    perf_frames = perf.split("@perf[\n", 1)[1].splitlines()
    assert len(perf_frames) == 2 and all(re.fullmatch(r"\tffffffff[0-9a-f]{8} [\w.]+\+\d+", f) for f in perf_frames)
    raw_frames = raw.split("@raw[\n", 1)[1].splitlines()
    assert len(raw_frames) == len(default_frames) and all(re.fullmatch(r"ffffffff[0-9a-f]{8}", f) for f in raw_frames)
    assert result.stdout.count("]: 4\n") == 3, result.stdout


@needs_bpf
def test_user_stack_and_kernel_symbol(tmp_path: Path) -> None:
    """ustack's addresses are named in the traced process while it lives (through bcc)."""
    program = (
        'uprobe:libc:getpid /pid == $1/ { printf("%s|%s|%s\\n", ustack(1), ustack(perf, 1), '
        "ksym(curtask->sched_class->enqueue_task)); }"
    )
    # The process stays a while after its calls: its addresses are named from its maps once bcc is
    # imported (0.4 s, more on a loaded machine), after the first event arrives.
    workload = "for _ in range(2): os.getpid(); time.sleep(0.2)\ntime.sleep(2)"
    result = traced(compile_program(program, tmp_path / "u.bpfb"), workload)
    line = re.compile(
        r"\n {8}(__)?getpid\+0\n\|\n\t7f[0-9a-f]+ (__)?getpid\+0 \(/usr/lib/x86_64-linux-gnu/libc\.so\.6\)\n\|enqueue_task_fair\n"  # noqa: E501
    )
    assert len(line.findall(result.stdout)) == 2, result.stdout + result.stderr


@needs_bpf
def test_fields_this_kernel_lacks_are_named_before_load(tmp_path: Path) -> None:
    """Compiled against a BTF with a field and a struct this kernel does not have: bpfrun names
    both in one line and loads nothing."""
    task = [("pid", 8, "int"), ("no_such_field", 16, "long")]
    structs = {"task_struct": (64, task), "no_such_struct": (8, [("x", 0, "int")])}
    script = "begin { @a = curtask->no_such_field; @b = ((struct no_such_struct *)curtask)->x; @c = curtask->pid; exit(); }"
    result = subprocess.run(bpfrun_command(_compile_against(tmp_path, structs, script)), capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "bpfrun: ERROR: this kernel's BTF (/sys/kernel/btf/vmlinux) lacks what the bundle reads: "
        "struct no_such_struct.x, struct task_struct.no_such_field\n"
    )


@needs_bpf
def test_rawtracepoint_arguments_by_name(tmp_path: Path) -> None:
    """args of a raw tracepoint are its prototype's parameters, named from BTF."""
    program = (
        "rawtracepoint:sys_enter /pid == $1 && args.id == 110/ { @getppid = count(); } "
        "rawtracepoint:sched_switch /args.prev->tgid == $1/ { @switched_out[args.prev->comm] = count(); }"
    )
    workload = "for _ in range(3): os.getppid(); time.sleep(0.01)"
    result = traced(compile_program(program, tmp_path / "r.bpfb"), workload)
    lines = result.stdout.splitlines()
    assert "@getppid: 3" in lines, result.stdout + result.stderr
    assert _switches_of_python(lines) >= 3, result.stdout


@needs_bpf
def test_sizeof_offsetof_and_dereference(tmp_path: Path) -> None:
    """Sizes and offsets as the kernel's BTF has them (read here by bpftool), and `*` reading
    an integer where a pointer points."""
    dump = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"], capture_output=True, text=True)
    task = re.search(r"STRUCT 'task_struct' size=(\d+) vlen=\d+\n((?:\t.*\n)+)", dump.stdout)
    tgid_bits = re.search(r"'tgid' type_id=\d+ bits_offset=(\d+)", task[2])
    program = (
        'begin { printf("%d %d %d %d\\n", sizeof(struct task_struct), offsetof(struct task_struct, tgid), '
        "*(int32 *)((uint64)curtask + offsetof(struct task_struct, tgid)) == pid, (*curtask).tgid == pid); exit(); }"
    )
    result = subprocess.run(bpfrun_command(compile_program(program, tmp_path / "z.bpfb")), capture_output=True, text=True)
    assert result.stdout == f"{task[1]} {int(tgid_bits[1]) // 8} 1 1\n\n\n", result.stderr


# Target descriptions


@needs_bpf
def test_a_target_description_lets_nobody_compile_what_only_tracefs_knows() -> None:
    """sched_wakeup's record has no BTF struct of its own name (it is its event class's), so
    without tracefs only the target description knows its fields."""
    described = subprocess.run(bpfrun_command("--describe-target"), capture_output=True, text=True)
    assert described.returncode == 0, described.stderr
    description = json.loads(described.stdout)
    btf = Path("/sys/kernel/btf/vmlinux").read_bytes()
    assert (description["release"], description["btf_sha256"]) == (os.uname().release, hashlib.sha256(btf).hexdigest())
    assert ["pid", "pid_t", 24, 4, 1] in description["tracepoints"]["sched:sched_wakeup"]
    with tempfile.TemporaryDirectory() as directory:
        tmp_path = Path(directory)
        os.chmod(tmp_path, 0o755)
        (tmp_path / "target.json").write_text(described.stdout)
        (tmp_path / "w.bt").write_text("tracepoint:sched:sched_wakeup /args.pid == $1/ { @woken = count(); }")
        for path in tmp_path.iterdir():
            path.chmod(0o644)
        as_nobody = (
            "umount -l /sys/kernel/tracing 2>/dev/null; umount -l /sys/kernel/debug 2>/dev/null; "
            f"cd /; HOME=/nonexistent setpriv --reuid=65534 --regid=65534 --clear-groups {BPFTC} {{}} {tmp_path}/w.bt -o -"
        )
        without = subprocess.run(["unshare", "-m", "sh", "-c", as_nobody.format("")], capture_output=True)
        assert without.returncode == 1
        assert b"Cannot find the fields of tracepoint:sched:sched_wakeup" in without.stderr
        with_target = subprocess.run(
            ["unshare", "-m", "sh", "-c", as_nobody.format(f"--target {tmp_path}/target.json")], capture_output=True
        )
        assert with_target.returncode == 0, with_target.stderr
        bundle = tmp_path / "w.bpfb"
        bundle.write_bytes(with_target.stdout)
        result = traced(bundle, "for _ in range(3): time.sleep(0.01)")
        assert re.fullmatch(r"\n\n@woken: \d+\n", result.stdout) and not result.stdout.endswith(" 0\n"), result.stdout


def test_probe_kinds_the_target_lacks_and_a_bad_target_file(tmp_path: Path) -> None:
    target = tmp_path / "t.json"
    target.write_text('{"format": 1}')
    refused = subprocess.run([BPFTC, "--target", target, "-e", "begin { }", "-o", "-"], capture_output=True, text=True)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"bpftc: ERROR: {target} is not a target description bpftc can use: malformed")
    assert refused.stderr.count("\n") == 1
    from common.target import Target, to_json

    btf = Path("/sys/kernel/btf/vmlinux").read_bytes()
    target.write_text(to_json(Target("6.1.0-test", "x86_64", btf, {}, ("begin", "end", "tracepoint"))))
    kprobe = subprocess.run([BPFTC, "--target", target, "-e", "kprobe:vfs_read { }", "-o", "-"], capture_output=True)
    assert kprobe.returncode == 1
    assert kprobe.stderr.decode().startswith("stdin:1:1-16: ERROR: The target kernel cannot attach kprobe probes\n")


@needs_bpf
def test_join_buf_ntop_and_macaddr(tmp_path: Path) -> None:
    """Outputs as bpftrace 0.27 printed them for the same calls (execve of /bin/echo)."""
    program = (
        "tracepoint:syscalls:sys_enter_execve /pid == $1/ { join(args.argv); join(args.argv, \",\"); "
        'printf("[%r] [%r] [%r] %s %s %s\\n", buf(args.filename, 5), buf(str(args.filename), 3), '
        "buf(str(args.filename), 11), ntop(0x0100007f), ntop(2, 0x0100007f), macaddr(str(args.filename))); "
        "@[buf(args.filename, 4)] = count(); @ip[ntop(0x0100007f)] = count(); }"
    )
    workload = "os.execv('/bin/echo', ['echo', 'a', 'b c'])"
    result = traced(compile_program(program, tmp_path / "j.bpfb"), workload)
    assert result.stdout == (
        "echo a b c\necho,a,b c\n[/bin/] [/bi] [/bin/echo\\x00\\x00] 127.0.0.1 127.0.0.1 2f:62:69:6e:2f:65\n"
        "\n\n@[/bin]: 1\n@ip[127.0.0.1]: 1\n"
    ), result.stderr
    json_result = traced(tmp_path / "j.bpfb", workload, "-f", "json")
    assert '{"type": "join", "data": "echo a b c"}\n' in json_result.stdout, json_result.stdout


@needs_bpf
def test_config_max_strlen_limits_strings_read_from_memory(tmp_path: Path) -> None:
    """As bpftrace 0.27 prints them: a string longer than max_strlen keeps max_strlen characters
    and ends in "..", str(s, n) keeps n - 1."""
    program = (
        "config = { max_strlen = 8 } tracepoint:syscalls:sys_enter_openat /pid == $1/ "
        '{ printf("%s|%s\\n", str(args.filename), str(args.filename, 5)); }'
    )
    workload = "for path in ('/etc/hostname', '/etc/'): os.close(os.open(path, os.O_RDONLY))"
    result = traced(compile_program(program, tmp_path / "m.bpfb"), workload)
    assert result.stdout == "/etc/hos..|/etc\n/etc/|/etc\n\n\n", result.stderr


@needs_bpf
def test_indexing_a_pointer_reads_its_elements(tmp_path: Path) -> None:
    program = (
        "tracepoint:syscalls:sys_enter_execve /pid == $1/ "
        '{ printf("%s|%s|%s|%d\\n", str(args.argv[0]), str(args->argv[1]), str(args.argv[2]), args.argv[3] == 0); }'
    )
    result = traced(compile_program(program, tmp_path / "i.bpfb"), "os.execv('/bin/echo', ['echo', 'a', 'b c'])")
    assert result.stdout == "echo|a|b c|1\n\n\n", result.stderr


@needs_bpf
def test_kaddr_is_the_hosts_symbol_address(tmp_path: Path) -> None:
    kallsyms = Path("/proc/kallsyms").read_text().splitlines()
    address = next(line.split()[0] for line in kallsyms if line.split()[2:3] == ["vfs_read"])
    program = 'begin { printf("%s %lx\\n", ksym(kaddr("vfs_read")), kaddr("vfs_read")); exit(); }'
    result = subprocess.run(bpfrun_command(compile_program(program, tmp_path / "k.bpfb")), capture_output=True, text=True)
    assert result.stdout == f"vfs_read {int(address, 16):x}\n\n\n", result.stderr
    missing = compile_program('begin { @ = kaddr("no_such_symbol_x"); exit(); }', tmp_path / "m.bpfb")
    result = subprocess.run(bpfrun_command(missing), capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (
        1, 'bpfrun: ERROR: kaddr("no_such_symbol_x"): no kernel symbol of that name on this host\n'
    )  # fmt: skip


# Whole structs held as values


@needs_bpf
def test_a_struct_copied_whole_prints_field_by_field(tmp_path: Path) -> None:
    """uts_ns->name is struct new_utsname: six char arrays, printed as strings; rlim is an array
    of struct rlimit, indexed; print() and a map value print the same text."""
    program = (
        "begin { @u = curtask->nsproxy->uts_ns->name; print(curtask->nsproxy->uts_ns->name); "
        "@nofile = curtask->signal->rlim[7]; exit(); }"
    )
    result = subprocess.run(bpfrun_command(compile_program(program, tmp_path / "u.bpfb")), capture_output=True, text=True)
    uname = os.uname()
    domain = Path("/proc/sys/kernel/domainname").read_text().strip()
    name = (
        f"{{ .sysname = {uname.sysname}, .nodename = {uname.nodename}, .release = {uname.release}, "
        f".version = {uname.version}, .machine = {uname.machine}, .domainname = {domain} }}"
    )
    # bpfrun inherits this process's RLIMIT_NOFILE (it raises only RLIMIT_MEMLOCK).
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    expected = f"{name}\n\n\n@nofile: {{ .rlim_cur = {soft}, .rlim_max = {hard} }}\n@u: {name}\n"
    assert result.stdout == expected, result.stderr


@needs_bpf
def test_tracepoint_args_copied_whole(tmp_path: Path) -> None:
    """`@x = args` of sys_enter_openat: the common fields, then the syscall's, as bpftrace prints
    them (dfd AT_FDCWD as the unsigned 8-byte slot it is in the record)."""
    program = "tracepoint:syscalls:sys_enter_openat /pid == $1/ { @x = args; }"
    workload = "os.close(os.open('/etc/hostname', os.O_RDONLY))"
    result = traced(compile_program(program, tmp_path / "a.bpfb"), workload)
    flags = os.O_RDONLY | os.O_CLOEXEC
    pattern = (
        r"@x: \{ \.common_type = \d+, \.common_flags = \d+, \.common_preempt_count = \d+, \.common_pid = -?\d+, "
        rf"\.__syscall_nr = 257, \.dfd = 4294967196, \.filename = 0x[0-9a-f]+, \.flags = {flags}, \.mode = 0 \}}"
    )
    assert re.fullmatch(pattern, result.stdout.strip()), result.stdout + result.stderr


@needs_bpf
def test_a_struct_copied_whole_needs_the_layout_it_was_compiled_against(tmp_path: Path) -> None:
    """Field reads are relocated (CO-RE) but a whole copy is not: compiled against a task_struct
    laid out differently, the bundle is refused before anything loads, by --check too."""
    members = [("pid", 8, "int"), ("tgid", 12, "int"), ("comm", 16, "char[16]")]
    bundle = _compile_against(tmp_path, {"task_struct": (64, members)}, "begin { @t = *curtask; exit(); }")
    result = subprocess.run(bpfrun_command(bundle), capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "bpfrun: ERROR: this kernel lays out struct task_struct differently from the kernel the bundle was compiled "
        "against, and the bundle copies it whole: compile it again with bpftc --btf (or --target) of this host\n"
    )
    check = subprocess.run(bpfrun_command("--check", bundle), capture_output=True, text=True)
    assert check.returncode == 3 and "kernel lays out struct task_struct differently" in check.stdout + check.stderr


@needs_bpf
def test_cgroup_path_names_the_cgroup_of_its_id(tmp_path: Path) -> None:
    """A process moved into a new cgroup2 cgroup: cgroup is that directory's inode, and
    cgroup_path names it in the unified hierarchy first, as bpftrace does."""
    unified = next(
        (line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines() if " - cgroup2 " in line),
        None,
    )
    if unified is None:
        import pytest

        pytest.skip("no cgroup2 hierarchy mounted")
    cgroup = Path(unified) / f"bpftc-test-{os.getpid()}"
    cgroup.mkdir()
    inode = cgroup.stat().st_ino  # a cgroup's id
    try:
        program = 'tracepoint:syscalls:sys_enter_getppid /pid == $1/ { printf("%d %s\\n", cgroup, cgroup_path(cgroup)); }'
        workload = f"open('{cgroup}/cgroup.procs', 'w').write(str(os.getpid()))\nos.getppid()"
        result = traced(compile_program(program, tmp_path / "g.bpfb"), workload)
    finally:
        cgroup.rmdir()
    number, paths = result.stdout.splitlines()[0].split(" ", 1)
    assert int(number) == inode, result.stdout
    assert paths.split(",")[0] == f"unified:/{cgroup.name}", result.stdout + result.stderr
    assert all(re.fullmatch(r"[\w,]+:/[\w/.-]*", entry) for entry in paths.split(",")), paths


@needs_bpf
def test_bitfields_are_read_where_this_kernel_has_them(tmp_path: Path) -> None:
    """sched_reset_on_fork is one bit of task_struct: compiled against a BTF that puts it (and
    its neighbour) at other bits of other bytes, the bundle reads this kernel's bits (CO-RE
    bitfield relocations: byte offset, size and shifts). Set by sched_setscheduler."""
    members = [
        ("pid", 8, "int"),
        ("sched_reset_on_fork", 20, "bitfield:1:3"),
        ("sched_contributes_to_load", 20, "bitfield:1:4"),
    ]
    script = "tracepoint:syscalls:sys_enter_getppid /pid == $1/ { print((curtask->sched_reset_on_fork, curtask->pid == tid)); }"
    for bundle in (_compile_against(tmp_path, {"task_struct": (64, members)}, script), compile_program(script, tmp_path / "here.bpfb")):
        workload = "os.getppid()\nos.sched_setscheduler(0, os.SCHED_OTHER | os.SCHED_RESET_ON_FORK, os.sched_param(0))\nos.getppid()"
        result = traced(bundle, workload)
        assert result.stdout == "(0, true)\n(1, true)\n\n\n", result.stderr


def test_fentry_and_fexit_args_from_the_functions_btf(tmp_path: Path) -> None:
    """fentry/fexit args by name, from vfs_read's BTF prototype (file, buf, count, pos): the
    context is the arguments as u64s, fexit's retval after them. This kernel refuses to load
    fentry programs (EPERM): bpfrun says so in one line, and attaches nothing."""
    from tests.compile import dump

    program = "fentry:vfs_read { @[args.count] = count(); @f = args.file->f_flags; } fexit:vfs_read { @r = retval; }"
    typed = dump(program, "resolve")
    assert "Field .count :: uint64" in typed and "Field ->f_flags :: uint32" in typed and "Field .file :: struct file *" in typed
    generated = dump("fexit:vfs_read { @r = retval; @c = args.count; }", "generate")
    assert re.search(r'%"field" = getelementptr i8, ptr %"\.1", i64 32\n\s+%"retval" = load i64', generated), generated
    assert 'getelementptr i8, ptr %".1", i64 16' in generated  # count, the third argument
    bundle = compile_program(program + " interval:ms:100 { exit(); }", tmp_path / "f.bpfb")
    result = subprocess.run(bpfrun_command(bundle), capture_output=True, text=True, timeout=20)
    if result.returncode == 0:  # a kernel that loads fentry programs
        return
    assert result.stdout == "" and result.stderr.startswith("bpfrun: ERROR: cannot load fentry:vmlinux:vfs_read: ")
    assert result.stderr.count("\n") == 1


@needs_bpf
def test_the_probes_context_inside_a_for_map_body(tmp_path: Path) -> None:
    """A for-map body is a callback of bpf_for_each_map_elem: the probe's context reaches it
    through the callback's context, so args, kstack and probe (a wildcard's) work there too."""
    program = (
        "tracepoint:syscalls:sys_enter_openat /pid == $1/ { @m[1] = 1; @m[2] = 2; "
        'for ($kv : @m) { printf("%d %s %d\\n", $kv.0, str(args.filename), args.flags); '
        "@stacks[kstack(1)] = count(); } } "
        'tracepoint:syscalls:sys_enter_getpp* /pid == $1/ { for ($kv : @m) { printf("%s\\n", probe); } }'
    )
    workload = "os.close(os.open('/etc/hostname', os.O_RDONLY))\nos.getppid()"
    result = traced(compile_program(program, tmp_path / "f.bpfb"), workload)
    flags = os.O_RDONLY | os.O_CLOEXEC
    lines = result.stdout.splitlines()
    expected = [f"{key} /etc/hostname {flags}" for key in (1, 2)] + ["tracepoint:syscalls:sys_enter_getppid"] * 2
    assert sorted(lines[:2]) + lines[2:4] == expected, result.stdout + result.stderr  # a hash map's order
    assert re.search(r"@stacks\[\n\s+\S+\+\d+\n\]: 2", result.stdout), result.stdout


_WORK_C = r"""
#include <stdio.h>
#include <stdbool.h>
struct point { int x; int y; };
__attribute__((noinline)) int work(int count, unsigned long size, const char *name, struct point *p, bool flag, short delta) {
    return count + (int)size + name[0] + p->x + flag + delta;
}
int main(void) {
    static char name[] = "hello";  /* written first: its page is there when work() reads it */
    struct point p = {3, 4};
    int total = 0;
    for (int i = 0; i < 3; i++) total += work(i - 1, 1000 + i, name, &p, i == 1, -7);
    printf("%d\n", total);
    return 0;
}
"""


@needs_bpf
def test_uprobe_args_by_name_from_the_binarys_dwarf(tmp_path: Path) -> None:
    """uprobe args.NAME: bpftc reads the parameters of a test binary's function from its DWARF
    (gcc -g -O2) and reads each from its register; strings through str(), pointers in hex."""
    import shutil

    import pytest

    if shutil.which("gcc") is None:
        pytest.skip("no gcc to build the test binary")
    source, binary = tmp_path / "work.c", tmp_path / "work"
    source.write_text(_WORK_C)
    subprocess.run(["gcc", "-g", "-O2", "-o", binary, source], check=True)
    program = (
        f'uprobe:{binary}:work {{ printf("%d %d %s %d %d\\n", args.count, args.size, str(args.name), '
        "args.flag, args.delta); @last = args; }"
    )
    bundle = compile_program(program, tmp_path / "u.bpfb")
    tracer = subprocess.Popen(bpfrun_command(bundle), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert tracer.stderr.readline().startswith("Attached 1 probe")
        subprocess.run([binary], check=True, capture_output=True)
    finally:
        tracer.send_signal(2)
        stdout, stderr = tracer.communicate(timeout=20)
    lines = stdout.splitlines()
    assert lines[:3] == ["-1 1000 hello 0 -7", "0 1001 hello 1 -7", "1 1002 hello 0 -7"], stdout + stderr
    assert re.fullmatch(
        r"@last: \{ \.count = 1, \.size = 1002, \.name = 0x[0-9a-f]+, \.p = 0x[0-9a-f]+, \.flag = false, \.delta = -7 \}",
        lines[-1],
    ), stdout


def test_uprobe_args_of_a_binary_without_debug_information() -> None:
    text = diagnostics_text("uprobe:/bin/true:main { print(args.x); }")
    assert text.splitlines()[0] == (
        "stdin:1:31-35: ERROR: Cannot find the arguments of main: /bin/true: no DWARF debug information "
        "(no .debug_info section, and no separate debug file found)"
    )


def test_path_of_a_struct_path_the_kernel_gives_fentry() -> None:
    """path() is bpf_d_path, which the kernel offers fentry/fexit (and iter) programs only; this
    kernel loads no fentry program, so the code is checked, not run: the helper's call with the
    buffer's size."""
    from tests.compile import dump

    assert diagnostics_text("begin { print(path(0)); }").splitlines()[0] == (
        "stdin:1:15-22: ERROR: The path function can only be used with 'fentry', 'fexit', 'iter' probes"
    )
    generated = dump("fentry:vfs_open { print(path(args.path, 16)); }", "generate")
    assert re.search(r"call i64 inttoptr \(i64 147 to ptr\)\(ptr %\"\w+\", ptr %\"\w+\", i32 16\)", generated), generated


@needs_bpf
def test_fields_of_structs_without_a_name(tmp_path: Path) -> None:
    """atomic_t is a typedef of a struct without a name: its counter is read as a path from the
    named struct that holds it (LLVM relocates only from a named struct; it aborted before)."""
    program = "begin { print((curtask->mm->mm_users.counter >= 1, curtask->signal->nr_threads >= 1)); exit(); }"
    result = subprocess.run(bpfrun_command(compile_program(program, tmp_path / "a.bpfb")), capture_output=True, text=True)
    assert result.stdout == "(true, true)\n\n\n", result.stderr


@needs_bpf
def test_buf_of_a_length_the_program_reads(tmp_path: Path) -> None:
    """buf(ptr, n) with n known only when the probe fires (write()'s count): n bytes, at most 1024."""
    program = 'tracepoint:syscalls:sys_enter_write /pid == $1/ { printf("%r|\\n", buf(args.buf, args.count)); }'
    workload = "os.write(2, b'hi\\x01 there')\nos.write(2, b'x' * 2000)\nos.write(2, b'')"
    result = traced(compile_program(program, tmp_path / "b.bpfb"), workload)
    assert result.stdout == "hi\\x01 there|\n" + "x" * 1024 + "|\n|\n\n\n", result.stdout[:300] + result.stderr


@needs_bpf
def test_an_enum_field_of_a_btf_tracepoint_loads(tmp_path: Path) -> None:
    """skb:kfree_skb's reason is an enum in BTF: its relocation describes it as an enum, which is
    what libbpf matches it with (as an integer it refused to load: "failed to resolve CO-RE")."""
    program = "tracepoint:skb:kfree_skb { @[args.reason] = count(); } interval:ms:100 { exit(); }"
    result = subprocess.run(bpfrun_command("-q", compile_program(program, tmp_path / "k.bpfb")), capture_output=True, text=True, timeout=20)
    assert result.returncode == 0 and result.stderr == "", result.stderr


@needs_bpf
def test_searching_a_string_read_from_memory(tmp_path: Path) -> None:
    """strcontains() and strstr() on str() of memory (1024 bytes): the search is a bpf_loop whose
    callback the verifier checks once (straight-line code over 1024 starts overflowed BPF's stack);
    the last starts, where the needle runs past the end, still count."""
    program = (
        'tracepoint:syscalls:sys_enter_openat /pid == $1/ { $f = str(args.filename); '
        'if (strcontains($f, "/etc")) { printf("%s %d\\n", $f, strstr($f, "host")); } '
        'printf("%d %d %d\\n", strstr($f, "xyz"), strstr($f, ""), strstr($f, "name")); }'
    )
    workload = "os.close(os.open('/etc/hostname', os.O_RDONLY))\nos.close(os.open('/proc/self/stat', os.O_RDONLY))"
    result = traced(compile_program(program, tmp_path / "s.bpfb"), workload)
    assert result.stdout == "/etc/hostname 5\n-1 0 9\n-1 0 -1\n\n\n", result.stdout + result.stderr


@needs_bpf
def test_comparing_and_measuring_a_string_read_from_memory(tmp_path: Path) -> None:
    """strncmp(), ==, != and strlen() of str() of memory (1024 bytes): word by word, in order
    (LLVM read every word first and spilled them past BPF's 512-byte stack)."""
    program = (
        'tracepoint:syscalls:sys_enter_openat /pid == $1/ { $f = str(args.filename); printf("%d %d %d %d\\n", '
        'strncmp($f, "/etc", 4), $f == "/etc/hostname", strlen($f), $f != "x"); }'
    )
    result = traced(compile_program(program, tmp_path / "c.bpfb"), "os.close(os.open('/etc/hostname', os.O_RDONLY))")
    assert result.stdout == "0 1 13 1\n\n\n", result.stdout + result.stderr
