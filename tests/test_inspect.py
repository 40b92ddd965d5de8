"""bpfrun inspect: what a bundle does, read without privileges, on every example and on a bundle
that prints, reads kernel data and takes parameters."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.bpfrun_run import ROOT, bpfrun_command, compile_program, needs_bpf

EXAMPLES = sorted((ROOT / "examples").glob("*.bt"))


@pytest.fixture
def tmp_path():
    """A directory user nobody can read (pytest's own are root's alone), files in it made readable."""
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o755)
        yield Path(directory)


def inspect(*arguments: str | Path) -> subprocess.CompletedProcess:
    """As user nobody when we are root: inspecting needs no privileges."""
    for argument in arguments:
        if isinstance(argument, Path):
            argument.chmod(0o644)
    command = bpfrun_command("inspect", *arguments)
    if os.geteuid() == 0:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(command, capture_output=True, text=True, cwd="/")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_every_example_bundle(example: Path, tmp_path: Path) -> None:
    bundle = compile_program(example.read_text(), tmp_path / "example.bpfb")
    result = inspect(bundle)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("compiler: bpftc ")
    assert "script:\n" + "".join(f"  {line}\n" for line in example.read_text().splitlines()) in result.stdout
    described = json.loads(inspect("--json", bundle).stdout)
    assert described["helpers"] and described["helpers"] == described["requires"]["helpers"]  # what the code calls
    assert described["source"] == example.read_text()


def test_outputs_kernel_fields_parameters_and_unsafe_functions(tmp_path: Path) -> None:
    program = (
        'tracepoint:sched:sched_switch /args.prev_pid == $1/ { printf("%s\\n", curtask->comm); '
        'system("true"); @n = getopt("limit", 10); }'
    )
    compiled = subprocess.run(
        [Path(bpfrun_command()[0]).parent / "bpftc", "--unsafe", "-e", program, "-o", tmp_path / "u.bpfb"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert compiled.returncode == 0, compiled.stderr
    described = json.loads(inspect("--json", tmp_path / "u.bpfb").stdout)
    assert described["probes"] == [{"attach_point": "tracepoint:sched:sched_switch", "program": described["probes"][0]["program"]}]
    assert described["outputs"] == ['printf "%s\\n"', 'system "true"']
    assert described["unsafe"] == ["system"]
    assert described["requires"]["kernel_fields"] == [
        "struct task_struct.comm", "struct trace_event_raw_sched_switch.prev_pid"
    ]  # fmt: skip
    assert described["parameters"] == ["$1", "--limit (int, default 10)"]
    assert "probe_read_kernel" in described["helpers"]


def test_a_damaged_bundle_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.bpfb").write_bytes(b"BPFB\x89\r\n\x1a" + b"\x00" * 10)
    result = inspect(tmp_path / "bad.bpfb")
    assert result.returncode == 1 and result.stderr.startswith("bpfrun: ERROR: ") and result.stderr.count("\n") == 1


def test_check_lists_everything_the_host_lacks_at_once(tmp_path: Path) -> None:
    program = (
        "tracepoint:syscalls:nothere { } uprobe:libc:no_such_function { } "
        "tracepoint:sched:sched_switch { @ = args.prev_pid; }"
    )
    bundle = compile_program(program, tmp_path / "c.bpfb")
    result = subprocess.run(bpfrun_command("--check", bundle), capture_output=True, text=True)
    assert result.returncode == 3, result.stderr
    assert result.stdout == (
        "missing: cannot attach tracepoint:syscalls:nothere: no such tracepoint\n"
        "missing: cannot attach uprobe:libc:no_such_function: no function 'no_such_function' in "
        "/lib/x86_64-linux-gnu/libc.so.6\n"
    )
    for order in (("--check", bundle, "--json"), ("--check", "--json", bundle)):  # the flag before or after
        described = json.loads(subprocess.run(bpfrun_command(*order), capture_output=True, text=True).stdout)
        assert described == {"ok": False, "missing": result.stdout.replace("missing: ", "").splitlines()}
    alone = subprocess.run(bpfrun_command("--json", bundle), capture_output=True, text=True)
    assert alone.returncode == 1 and "--json goes with --check" in alone.stderr and alone.stdout == ""
    fine = compile_program("tracepoint:sched:sched_switch { @ = args.prev_pid; }", tmp_path / "ok.bpfb")
    result = subprocess.run(bpfrun_command("--check", fine), capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (0, "ok: this host has what the bundle needs\n")


def test_the_same_script_gives_the_same_bytes(tmp_path: Path) -> None:
    """Reproducible: compiled in two directories, at two times, by root and by nobody."""
    script = (ROOT / "examples" / "read_tp.bt").read_text()
    outputs = []
    for index, user in enumerate((None, "65534")):
        directory = tmp_path / f"build{index}"
        directory.mkdir(mode=0o777)
        os.chmod(directory, 0o777)
        (directory / "read_tp.bt").write_text(script)
        (directory / "read_tp.bt").chmod(0o644)
        command = [str(Path(bpfrun_command()[0]).parent / "bpftc"), "read_tp.bt", "-o", "-"]
        if user is not None and os.geteuid() == 0:
            command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
        result = subprocess.run(command, capture_output=True, cwd=directory, env={"HOME": "/nonexistent", "PATH": os.environ["PATH"]})
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]


@needs_bpf
def test_the_kernel_is_asked_for_each_helper_a_bundle_calls() -> None:
    """bpfrun --check asks this kernel (libbpf_probe_bpf_helper) for each helper the bundle's
    requirements list: this 6.x kernel has every one bpftc emits, for every program type."""
    from bpfrun.preflight import missing_helpers
    from common.schema import BPF_HELPERS, Requirements

    kinds = ("tracepoint", "kprobe", "profile", "rawtracepoint")
    every = Requirements("x86_64", probe_kinds=kinds, helpers=tuple(sorted(BPF_HELPERS.values())))
    assert missing_helpers(every) == []
    assert missing_helpers(Requirements("x86_64", probe_kinds=kinds, helpers=("not_a_helper",))) == []
