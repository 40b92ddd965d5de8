"""Bundles between bpftc and bpfrun: the container round trip, and bpfrun refusing bad input.

Whatever is wrong with a bundle (not one at all, damaged, for another host, inconsistent with its
own bytecode, refused by the kernel), bpfrun prints exactly one line `bpfrun: ERROR: ...` on
stderr, no traceback, exits non-zero, and leaves nothing loaded or attached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import signal
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest

from bpfrun import __main__ as bpfrun_main
from bpfrun import attach, tracefs
from bpfrun.errors import UserError
from bpfrun.verify import verify
from common import bundle
from common.bundle import Bundle
from common.schema import (
    EXIT,
    INTERVAL,
    PRINTF,
    EventSpec,
    MapSpec,
    ParameterSpec,
    ProbeSpec,
    Requirements,
    Resources,
    to_dict,
)
from common.types import COUNT_T, HIST_T, INT64, UINT64, string_type

from tests.bpfrun_elf import verifier_rejected_elf
from tests.bpfrun_run import ROOT, compile_program, needs_bpf, programs_loaded, run_bpfrun, wait_unloaded

FAKE_ELF = b"\x7fELF" + bytes(60)


def resources(**changes: object) -> Resources:
    base = Resources(
        source_name="-e",
        probes=(
            ProbeSpec("BEGIN", (), "BEGIN_1", "BEGIN"),
            ProbeSpec("tracepoint", ("syscalls", "sys_enter_read"), "tracepoint_1", "tracepoint:syscalls:sys_enter_read"),
        ),
        maps=(MapSpec("@", "AT_", (UINT64,), COUNT_T, 4096), MapSpec("@h", "AT_h", (), HIST_T, 4096)),
        events=(EventSpec(0, PRINTF, "%d %s\n", (INT64, string_type(16))), EventSpec(1, EXIT, "", (INT64,))),
        event_map="events",
        requirements=Requirements("x86_64"),
    )
    return dataclasses.replace(base, **changes)


def test_round_trip() -> None:
    original = Bundle(resources(parameters=(ParameterSpec(1, INT64),)), FAKE_ELF)
    assert bundle.read(bundle.write(original)) == original


def _envelope(**changes: object) -> bytes:
    payload = msgpack.packb({"resources": to_dict(resources()), "elf": FAKE_ELF}, use_bin_type=True)
    envelope = {"format": bundle.FORMAT_VERSION, "payload": payload, "sha256": hashlib.sha256(payload).digest(), "signature": None}
    envelope.update(changes)
    return bundle.MAGIC + msgpack.packb(envelope, use_bin_type=True)


def _tampered() -> bytes:
    data = bytearray(bundle.write(Bundle(resources(), FAKE_ELF)))
    data[data.index(FAKE_ELF) + 10] ^= 0x01  # one bit of the ELF, inside the checksummed payload
    return bytes(data)


GOOD = bundle.write(Bundle(resources(), FAKE_ELF))
BAD_BUNDLES = {
    "empty": (b"", "bpfrun: ERROR: not a bpftc bundle (bad magic)"),
    "garbage": (b"\x00garbage\xff" * 100, "bpfrun: ERROR: not a bpftc bundle (bad magic)"),
    "elf instead of bundle": (FAKE_ELF, "bpfrun: ERROR: not a bpftc bundle (bad magic)"),
    "wrong magic": (b"BPFX" + GOOD[4:], "bpfrun: ERROR: not a bpftc bundle (bad magic)"),
    "truncated": (GOOD[: len(GOOD) // 2], "bpfrun: ERROR: bundle is truncated or corrupt (envelope: "),
    "only the magic": (bundle.MAGIC, "bpfrun: ERROR: bundle is truncated or corrupt (envelope: "),
    "tampered": (_tampered(), "bpfrun: ERROR: bundle is corrupt (checksum mismatch)"),
    "wrong format version": (
        _envelope(format=bundle.FORMAT_VERSION + 1),
        f"bpfrun: ERROR: bundle format {bundle.FORMAT_VERSION + 1} is not supported",
    ),
    "signed": (_envelope(signature=b"sig"), "bpfrun: ERROR: bundle is signed, but this bpfrun cannot check signatures"),
}


def assert_one_error_line(result: subprocess.CompletedProcess, start: str) -> None:
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert stderr.count("\n") == 1 and stderr.endswith("\n"), stderr
    assert stderr.startswith(start), stderr
    assert "Traceback" not in stderr
    assert result.stdout == b""


@pytest.mark.parametrize("name", BAD_BUNDLES)
def test_bad_bundle_is_one_error_line(name: str, tmp_path: Path) -> None:
    data, start = BAD_BUNDLES[name]
    path = tmp_path / "bad.bpfb"
    path.write_bytes(data)
    assert_one_error_line(run_bpfrun(path), start)


def test_bad_bundle_on_stdin() -> None:
    assert_one_error_line(run_bpfrun("-", stdin=b"garbage"), "bpfrun: ERROR: not a bpftc bundle (bad magic)")


def test_unreadable_path(tmp_path: Path) -> None:
    assert_one_error_line(run_bpfrun(tmp_path / "missing.bpfb"), "bpfrun: ERROR: cannot read bundle ")
    assert_one_error_line(run_bpfrun(tmp_path), "bpfrun: ERROR: cannot read bundle ")


INCONSISTENT = {
    "other arch": (resources(requirements=Requirements("aarch64")), "bundle was built for aarch64, this host is x86_64"),
    "parameters": (resources(parameters=(ParameterSpec(1, INT64),)), "bundle takes positional parameters"),
    "no probes": (resources(probes=()), "bundle has no probes"),
    "duplicate program": (
        resources(probes=(ProbeSpec("BEGIN", (), "p", "BEGIN"), ProbeSpec("END", (), "p", "END"))),
        "bundle has duplicate probe program 'p'",
    ),
    "interval without period": (
        resources(probes=(ProbeSpec(INTERVAL, ("s", "1"), "i", "interval:s:1", 0),)),
        "probe 'interval:s:1': interval period must be positive, not 0",
    ),
    "tracepoint without name": (
        resources(probes=(ProbeSpec("tracepoint", ("syscalls",), "t", "tracepoint:syscalls"),)),
        "probe 'tracepoint:syscalls': invalid tracepoint target 'syscalls'",
    ),
    "duplicate map": (
        resources(maps=(MapSpec("@a", "AT_a", (), INT64, 1), MapSpec("@b", "AT_a", (), INT64, 1))),
        "bundle has duplicate map ELF name 'AT_a'",
    ),
    "map named like the event map": (
        resources(maps=(MapSpec("@a", "events", (), INT64, 1),)),
        "bundle has duplicate map ELF name 'events'",
    ),
    "hist as a key": (
        resources(maps=(MapSpec("@a", "AT_a", (HIST_T,), INT64, 1),)),
        "map @a key has type hist_t, which bpfrun cannot decode",
    ),
    "duplicate event": (
        resources(events=(EventSpec(0, EXIT, "", (INT64,)), EventSpec(0, EXIT, "", (INT64,)))),
        "bundle has duplicate event id 0",
    ),
    "events without map": (resources(event_map=""), "bundle has events but no event map"),
    "printf arguments": (
        resources(events=(EventSpec(0, PRINTF, "%d %d\n", (INT64,)),)),
        "printf event 0 ('%d %d\\n'): 2 conversions for 1 arguments",
    ),
    "printf types": (
        resources(events=(EventSpec(0, PRINTF, "%d\n", (string_type(16),)),)),
        "printf event 0 ('%d\\n'): %d cannot print argument 1 of type string[16]",
    ),
    "exit code": (resources(events=(EventSpec(0, EXIT, "", ()),)), "exit event 0 must have one integer argument"),
}


@pytest.mark.parametrize("name", INCONSISTENT)
def test_inconsistent_resources(name: str) -> None:
    bad, message = INCONSISTENT[name]
    with pytest.raises(UserError) as error:
        verify(bad)
    assert str(error.value).startswith(message)


def test_inconsistent_resources_from_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "arm.bpfb"
    path.write_bytes(bundle.write(Bundle(resources(requirements=Requirements("aarch64")), FAKE_ELF)))
    assert_one_error_line(run_bpfrun(path), "bpfrun: ERROR: bundle was built for aarch64, this host is x86_64")


def test_the_loader_imports_no_compiler() -> None:
    modules = ("read", "verify", "libbpf", "load", "tracefs", "attach", "run", "events", "maps", "output", "printf")
    code = (
        f"import bpfrun.__main__, {', '.join('bpfrun.' + name for name in modules)}, sys\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lark', 'llvmlite', 'bcc', 'bpftc')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert (result.stdout, result.stderr) == ("[]\n", "")


# Bundles that pass verify but not load or attach. These run bpfrun in this process, so that only
# bpfrun's own cleanup (not the end of a process) can leave the kernel clean.


def run_in_process(path: Path, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        status = bpfrun_main._main(str(path), verbose=False)
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    return status, capsys.readouterr().err


def links_attached() -> set[int]:
    listing = subprocess.run(["bpftool", "link", "show"], capture_output=True, text=True, check=True)
    return {int(line.split(":")[0]) for line in listing.stdout.splitlines() if line[:1].isdigit()}


def rewrite(path: Path, changes: dict, elf: bytes | None = None) -> Path:
    original = bundle.read(path.read_bytes())
    changed = Bundle(dataclasses.replace(original.resources, **changes), elf or original.elf)
    path.write_bytes(bundle.write(changed))
    return path


@needs_bpf
def test_load_and_attach_failures_leave_nothing_behind(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    programs, links = programs_loaded(), links_attached()
    two_probes = "tracepoint:syscalls:sys_enter_read { @x = count(); } tracepoint:syscalls:sys_enter_write { @y = count(); }"
    cases = []

    path = compile_program(two_probes, tmp_path / "missing_program.bpfb")
    probes = bundle.read(path.read_bytes()).resources.probes
    rewrite(path, {"probes": (probes[0], dataclasses.replace(probes[1], program="nothere"))})
    cases.append((path, "bpfrun: ERROR: bundle's BPF object has no program 'nothere' for probe tracepoint:syscalls:sys_enter_write"))

    path = compile_program(two_probes, tmp_path / "map_sizes.bpfb")
    maps = bundle.read(path.read_bytes()).resources.maps
    rewrite(path, {"maps": (dataclasses.replace(maps[0], key=(string_type(16),)), *maps[1:])})
    cases.append((path, "bpfrun: ERROR: map @x ('AT_x') has key/value sizes 8/8 in the BPF object, but 16/8 in the bundle's metadata"))

    path = compile_program("BEGIN { exit(); }", tmp_path / "verifier.bpfb")
    rewrite(path, {"probes": (ProbeSpec("BEGIN", (), "bad", "BEGIN"),), "events": (), "event_map": ""}, elf=verifier_rejected_elf())
    cases.append((path, "bpfrun: ERROR: cannot load BEGIN: math between ctx pointer and 1099511627776 is not allowed"))

    path = compile_program("BEGIN { printf(\"begun\\n\"); } kprobe:sys_read { @y = count(); }", tmp_path / "kprobe.bpfb")
    cases.append((path, "bpfrun: ERROR: cannot attach kprobe:sys_read: kprobes are not available on this kernel (CONFIG_KPROBES is off)"))

    path = compile_program("tracepoint:syscalls:sys_enter_read { @x = count(); } tracepoint:syscalls:nothere { @y = count(); }", tmp_path / "tracepoint.bpfb")
    cases.append((path, "bpfrun: ERROR: cannot attach tracepoint:syscalls:nothere: no such tracepoint"))

    for path, message in cases:
        status, stderr = run_in_process(path, capsys)
        assert (status, stderr) == (1, message + "\n")
        assert wait_unloaded(programs) == set(), path.name
        assert links_attached() - links == set(), path.name

    # An attach that fails for real after another probe was attached: pretend the kernel has kprobes,
    # so the check passes and libbpf's attach fails once the tracepoint is attached. The tracepoint
    # must be detached again.
    monkeypatch.setattr(tracefs, "kprobes_available", lambda: True)
    path = compile_program("tracepoint:syscalls:sys_enter_read { @x = count(); } kprobe:sys_read { @y = count(); }", tmp_path / "late.bpfb")
    status, stderr = run_in_process(path, capsys)
    assert status == 1 and stderr.startswith("bpfrun: ERROR: cannot attach kprobe:sys_read: ") and stderr.count("\n") == 1
    assert wait_unloaded(programs) == set()
    assert links_attached() - links == set()
    assert attach.attached_message(bundle.read(path.read_bytes()).resources.probes) == "Attached 2 probes"


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    assert_one_error_line(run_bpfrun(), "bpfrun: ERROR: Missing argument 'BUNDLE'.")
    assert_one_error_line(run_bpfrun("--bogus", tmp_path), "bpfrun: ERROR: No such option '--bogus'")


def test_a_bug_is_one_line_with_status_2(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_verify(resources: Resources) -> None:
        raise KeyError("oops")

    monkeypatch.setattr("bpfrun.verify.verify", broken_verify)
    path = tmp_path / "good.bpfb"
    path.write_bytes(GOOD)
    assert run_in_process(path, capsys) == (2, "BUG: KeyError: 'oops'\n")
