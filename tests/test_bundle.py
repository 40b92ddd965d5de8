"""Bundles between bpftc and bpfrun: the container round trip, and bpfrun refusing bad input.

Whatever is wrong with a bundle (not one at all, damaged, for another host, inconsistent with its
own bytecode, refused by the kernel), bpfrun prints exactly one line `bpfrun: ERROR: ...` on
stderr, no traceback, exits non-zero, and leaves nothing loaded or attached.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest

from bpfrun import __main__ as bpfrun_main
from bpfrun import tracefs
from bpfrun.errors import UserError
from bpfrun.verify import verify
from common import bundle, layout
from common.bundle import Bundle
from common.layout import I64, U64, Layout
from common.record import replace
from common.schema import (
    INTERVAL,
    PERCPU_ARRAY,
    PERCPU_HASH,
    ClearEvent,
    ExitEvent,
    MapSpec,
    PrintfEvent,
    ProbeSpec,
    Requirements,
    Resources,
    to_dict,
)
from tests.bpfrun_elf import verifier_rejected_elf
from tests.bpfrun_run import ROOT, compile_program, needs_bpf, programs_loaded, run_bpfrun, wait_unloaded
from tests.bundle_bytes import with_header, with_section

FAKE_ELF = b"\x7fELF" + bytes(60)


STRING16 = Layout(layout.STRING, 16)


def printf_args(*fields: Layout) -> Layout:
    return layout.packed(layout.TUPLE, [("", field) for field in fields])


def resources(**changes: object) -> Resources:
    base = Resources(
        source_name="stdin",
        probes=(
            ProbeSpec("begin", (), "begin_1", "begin"),
            ProbeSpec(
                "tracepoint", ("syscalls", "sys_enter_read"), "tracepoint_1", "tracepoint:syscalls:sys_enter_read"
            ),
        ),
        maps=(
            MapSpec("@", "AT_", PERCPU_HASH, U64, U64, 4096, "count"),
            MapSpec("@h", "AT_h", PERCPU_ARRAY, None, I64, 66, "hist", (0,)),
        ),
        events=(PrintfEvent("%d %s\n", printf_args(I64, STRING16)), ExitEvent(), ClearEvent("@h")),
        event_map="events",
        lost_map="lost_events",
        requirements=Requirements("x86_64"),
    )
    return replace(base, **changes)


def test_round_trip() -> None:
    arguments = layout.packed(layout.RECORD, [("arg1", I64), ("str2", Layout(layout.STRING, 128))])
    original = Bundle(resources(globals=arguments), FAKE_ELF)
    assert bundle.read(bundle.write(original)) == original


def test_the_header_is_as_docs_bundle_md_lays_it_out() -> None:
    data = bundle.write(Bundle(resources(compiler="bpftc 1.2.3", source="begin {}"), FAKE_ELF))
    lengths = [int.from_bytes(data[offset : offset + 4], "little") for offset in (44, 48, 52, 56)]
    assert (data[:8], data[8:10], data[10:12]) == (b"BPFB\x89\r\n\x1a", b"\x03\x00", b"\x00\x00")
    assert data[12:44] == b"bpftc 1.2.3".ljust(32, b"\0")
    assert data[60:92] == hashlib.sha256(data[:60] + data[92:]).digest()
    assert len(data) == 92 + sum(lengths) and lengths[1:3] == [len(FAKE_ELF), len(b"begin {}")]
    elf_start = 92 + lengths[0]
    assert data[elf_start : elf_start + lengths[1]] == FAKE_ELF
    assert data[elf_start + lengths[1] :][: lengths[2]] == b"begin {}"
    requirements = msgpack.unpackb(data[-lengths[3] :])
    assert requirements["arch"] == "x86_64" and all(value == [] for key, value in requirements.items() if key != "arch")
    assert "source" not in msgpack.unpackb(data[92:elf_start])


def test_the_loader_checks_the_header_before_it_decodes_a_section() -> None:
    """A section that would fail to decode is not decoded when the digest does not hold."""
    broken = bytearray(with_section(GOOD, "metadata", b"\xc1"))
    broken[-1] ^= 1
    with pytest.raises(bundle.BundleError, match=r"^bundle is corrupt \(checksum mismatch\)$"):
        bundle.read(bytes(broken))


def _tampered() -> bytes:
    data = bytearray(bundle.write(Bundle(resources(), FAKE_ELF)))
    data[data.index(FAKE_ELF) + 10] ^= 0x01  # one bit of the ELF, inside the checksummed sections
    return bytes(data)


GOOD = bundle.write(Bundle(resources(), FAKE_ELF))
FORMAT_2 = bundle.MAGIC + msgpack.packb({"format": 2, "payload": b"", "sha256": b"", "signature": None})
BAD_BUNDLES = {
    "empty": (b"", "bpfrun: ERROR: not a bpftc bundle (bad magic)"),
    "garbage": (b"\x00garbage\xff" * 100, "bpfrun: ERROR: not a bpftc bundle (bad magic)"),
    "elf instead of bundle": (FAKE_ELF, "bpfrun: ERROR: not a bpftc bundle (bad magic)"),
    "wrong magic": (b"BPFX" + GOOD[4:], "bpfrun: ERROR: not a bpftc bundle (bad magic)"),
    "truncated": (
        GOOD[: len(GOOD) // 2],
        f"bpfrun: ERROR: bundle is truncated ({len(GOOD) // 2} bytes, its header says {len(GOOD)})",
    ),
    "only the magic": (bundle.MAGIC, "bpfrun: ERROR: bundle is truncated (8 bytes, shorter than its 92-byte header)"),
    "trailing bytes": (GOOD + b"x", "bpfrun: ERROR: bundle is corrupt (1 bytes after its end)"),
    "tampered": (_tampered(), "bpfrun: ERROR: bundle is corrupt (checksum mismatch)"),
    "tampered header": (
        with_header(GOOD, compiler=b"bpftc 9", sha256=bundle.read_header(GOOD).sha256),
        "bpfrun: ERROR: bundle is corrupt (checksum mismatch)",
    ),
    "wrong format version": (
        with_header(GOOD, format=bundle.FORMAT_VERSION + 1),
        f"bpfrun: ERROR: bundle format {bundle.FORMAT_VERSION + 1} is not supported (this bpfrun reads format 3)",
    ),
    "format 2": (FORMAT_2, "bpfrun: ERROR: bundle format 2 is not supported (this bpfrun reads format 3)"),
    "huge lengths": (with_header(GOOD, elf=0xFFFFFFFF), "bpfrun: ERROR: bundle is truncated ("),
    "bad signature length": (
        with_header(GOOD, signature_length=3) + b"abc",
        "bpfrun: ERROR: bundle's signature is malformed",
    ),
    "compiler not text": (
        with_header(GOOD, compiler=b"bpftc\n0.1"),
        "bpfrun: ERROR: bundle is corrupt (its compiler name is not printable ASCII)",
    ),
    "no elf": (with_section(GOOD, "elf", b"MZ"), "bpfrun: ERROR: bundle holds no ELF object"),
    "source not utf-8": (with_section(GOOD, "source", b"\xff"), "bpfrun: ERROR: bundle's source is not UTF-8 text"),
    "metadata not msgpack": (with_section(GOOD, "metadata", b"\xc1"), "bpfrun: ERROR: bundle is corrupt (metadata: "),
    "metadata a list": (
        with_section(GOOD, "metadata", b"\x90"),
        "bpfrun: ERROR: bundle is corrupt (metadata is not a map)",
    ),
    "source twice": (
        with_section(
            GOOD, "metadata", msgpack.packb({k: v for k, v in to_dict(resources()).items() if k != "requirements"})
        ),
        "bpfrun: ERROR: bundle is corrupt (its metadata repeats a field the header or a section holds)",
    ),
    "requirements missing a field": (
        with_section(GOOD, "requirements", msgpack.packb({})),
        "bpfrun: ERROR: bundle metadata is invalid: resources.requirements: missing field 'arch'",
    ),
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
    "other arch": (
        resources(requirements=Requirements("aarch64")),
        "bundle was built for aarch64, this host is x86_64",
    ),
    "unknown global": (
        resources(globals=layout.packed(layout.RECORD, [("secret", I64)])),
        "bundle's globals have a field bpfrun does not know: 'secret' (int)",
    ),
    "no probes": (resources(probes=()), "bundle has no probes"),
    "duplicate program": (
        resources(probes=(ProbeSpec("begin", (), "p", "begin"), ProbeSpec("end", (), "p", "end"))),
        "bundle has duplicate probe program 'p'",
    ),
    "unknown provider": (
        resources(probes=(ProbeSpec("watchpoint", ("x",), "u", "watchpoint:x"),)),
        "probe 'watchpoint:x': provider 'watchpoint' is not supported by bpfrun",
    ),
    "uprobe without a function": (
        resources(probes=(ProbeSpec("uprobe", ("x",), "u", "uprobe:x"),)),
        "probe 'uprobe:x': invalid uprobe target 'x'",
    ),
    "interval without period": (
        resources(probes=(ProbeSpec(INTERVAL, (), "i", "interval:s:1", 0),)),
        "probe 'interval:s:1': an interval needs a period between 1 and",
    ),
    "tracepoint without name": (
        resources(probes=(ProbeSpec("tracepoint", ("syscalls",), "t", "tracepoint:syscalls"),)),
        "probe 'tracepoint:syscalls': invalid tracepoint target 'syscalls'",
    ),
    "tracepoint leaving tracefs": (
        resources(probes=(ProbeSpec("tracepoint", ("syscalls", "../x"), "t", "tracepoint:syscalls:x"),)),
        "probe 'tracepoint:syscalls:x': invalid tracepoint target 'syscalls:../x'",
    ),
    "duplicate map": (
        resources(maps=(MapSpec("@a", "AT_a", "hash", None, I64, 1), MapSpec("@b", "AT_a", "hash", None, I64, 1))),
        "bundle has duplicate map ELF name 'AT_a'",
    ),
    "map named like the event map": (
        resources(maps=(MapSpec("@a", "events", "hash", None, I64, 1),)),
        "bundle has duplicate map ELF name 'events'",
    ),
    "integer of 3 bytes": (
        resources(maps=(MapSpec("@a", "AT_a", "hash", Layout(layout.INT, 3), I64, 1),)),
        "map @a key is invalid: an integer of 3 bytes",
    ),
    "field outside its tuple": (
        resources(maps=(MapSpec("@a", "AT_a", "hash", None, Layout(layout.TUPLE, 8, (layout.Field("", 4, U64),)), 1),)),
        "map @a value is invalid: field ? outside its 8-byte tuple",
    ),
    "count in a shared hash": (
        resources(maps=(MapSpec("@a", "AT_a", "hash", None, U64, 1, "count"),)),
        "map @a: count() needs a per-CPU map of 64-bit integers",
    ),
    "hist bits": (
        resources(maps=(MapSpec("@a", "AT_a", PERCPU_HASH, U64, I64, 1, "hist", (9,)),)),
        "map @a: hist() takes one parameter between 0 and 5, not (9,)",
    ),
    "array of the wrong size": (
        resources(maps=(MapSpec("@a", "AT_a", PERCPU_ARRAY, None, I64, 3, "hist", (0,)),)),
        "map @a is an array of 3 elements, not 66",
    ),
    "events without map": (resources(event_map=""), "bundle has events but no event map or lost-events map"),
    "printf arguments": (
        resources(events=(PrintfEvent("%d %d\n", printf_args(I64)),)),
        "printf event 0 ('%d %d\\n'): 2 conversions for 1 arguments",
    ),
    "printf types": (
        resources(events=(PrintfEvent("%d\n", printf_args(STRING16)),)),
        "printf event 0: %d cannot print argument 1, a string",
    ),
    "event on a missing map": (
        resources(events=(ClearEvent("@nothere"),)),
        "clear event 0 names a map the bundle does not have: '@nothere'",
    ),
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
        status = bpfrun_main._main(str(path), bpfrun_main.Options())
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    return status, capsys.readouterr().err


def links_attached() -> set[int]:
    listing = subprocess.run(["bpftool", "link", "show"], capture_output=True, text=True, check=True)
    return {int(line.split(":")[0]) for line in listing.stdout.splitlines() if line[:1].isdigit()}


def rewrite(path: Path, changes: dict, elf: bytes | None = None) -> Path:
    original = bundle.read(path.read_bytes())
    changed = Bundle(replace(original.resources, **changes), elf or original.elf)
    path.write_bytes(bundle.write(changed))
    return path


@needs_bpf
def test_load_and_attach_failures_leave_nothing_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    programs, links = programs_loaded(), links_attached()
    two_probes = (
        "tracepoint:syscalls:sys_enter_read { @x = count(); } tracepoint:syscalls:sys_enter_write { @y = count(); }"
    )
    cases = []

    path = compile_program(two_probes, tmp_path / "missing_program.bpfb")
    probes = bundle.read(path.read_bytes()).resources.probes
    rewrite(path, {"probes": (probes[0], replace(probes[1], program="nothere"))})
    cases.append(
        (
            path,
            "bpfrun: ERROR: bundle's BPF object does not match its probes "
            "(undeclared: ['tracepoint_syscalls_sys_enter_write_2'], missing: ['nothere'])",
        )
    )

    path = compile_program(two_probes, tmp_path / "map_sizes.bpfb")
    maps = bundle.read(path.read_bytes()).resources.maps
    rewrite(path, {"maps": (replace(maps[0], kernel_type=PERCPU_HASH, key=STRING16), *maps[1:])})
    cases.append(
        (
            path,
            "bpfrun: ERROR: map @x ('AT_x') has type/key/value sizes/entries (6, 4, 8, 1) in the BPF object, but (5, 16, 8, 1) in the bundle's metadata",
        )
    )

    path = compile_program("BEGIN { exit(); }", tmp_path / "verifier.bpfb")
    changes = {
        "probes": (ProbeSpec("begin", (), "bad", "begin"),),
        "events": (),
        "event_map": "",
        "lost_map": "",
        "globals": None,
    }
    rewrite(path, changes, elf=verifier_rejected_elf())
    cases.append((path, "bpfrun: ERROR: cannot load begin: math between ctx pointer and 1099511627776 is not allowed"))

    path = compile_program('BEGIN { printf("begun\\n"); } kprobe:sys_read { @y = count(); }', tmp_path / "kprobe.bpfb")
    cases.append(
        (
            path,
            "bpfrun: ERROR: cannot attach kprobe:sys_read: kprobes are not available on this kernel (CONFIG_KPROBES is off)",
        )
    )

    path = compile_program(
        "tracepoint:syscalls:sys_enter_read { @x = count(); } tracepoint:syscalls:nothere { @y = count(); }",
        tmp_path / "tracepoint.bpfb",
    )
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
    path = compile_program(
        "tracepoint:syscalls:sys_enter_read { @x = count(); } kprobe:sys_read { @y = count(); }", tmp_path / "late.bpfb"
    )
    status, stderr = run_in_process(path, capsys)
    assert (
        status == 1 and stderr.startswith("bpfrun: ERROR: cannot attach kprobe:sys_read: ") and stderr.count("\n") == 1
    )
    assert wait_unloaded(programs) == set()
    assert links_attached() - links == set()


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    assert_one_error_line(run_bpfrun(), "bpfrun: ERROR: Missing argument 'BUNDLE'.")
    assert_one_error_line(run_bpfrun("--bogus", tmp_path), "bpfrun: ERROR: No such option '--bogus'")


def test_a_bug_is_one_line_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_verify(resources: Resources, allow_unsafe: bool) -> None:
        raise KeyError("oops")

    monkeypatch.setattr("bpfrun.verify.verify", broken_verify)
    path = tmp_path / "good.bpfb"
    path.write_bytes(GOOD)
    assert run_in_process(path, capsys) == (2, "BUG: KeyError: 'oops'\n")


@needs_bpf
def test_a_bpf_object_that_does_more_than_its_metadata_says_is_refused(tmp_path: Path, capsys) -> None:
    """The issue's crafted bundles: an undeclared program, a helper bpftc never emits
    (bpf_send_signal), a map larger than declared. Each is one line, and nothing is loaded."""
    programs = programs_loaded()
    two_probes = (
        "tracepoint:syscalls:sys_enter_read { @x = count(); } tracepoint:syscalls:sys_enter_write { @y = pid; }"
    )

    hidden = compile_program(two_probes, tmp_path / "hidden.bpfb")
    resources = bundle.read(hidden.read_bytes()).resources
    rewrite(hidden, {"probes": resources.probes[:1]})
    assert run_in_process(hidden, capsys) == (
        1,
        "bpfrun: ERROR: bundle's BPF object does not match its probes "
        "(undeclared: ['tracepoint_syscalls_sys_enter_write_2'], missing: [])\n",
    )

    signal_sender = compile_program(two_probes, tmp_path / "signal.bpfb")
    elf = bundle.read(signal_sender.read_bytes()).elf
    call_pid_tgid = bytes.fromhex("850000000e000000")  # call 14: bpf_get_current_pid_tgid
    assert call_pid_tgid in elf
    rewrite(signal_sender, {}, elf=elf.replace(call_pid_tgid, bytes.fromhex("850000006d000000")))  # call 109
    status, stderr = run_in_process(signal_sender, capsys)
    assert (
        status == 1
        and stderr.startswith("bpfrun: ERROR: bundle's code in ")
        and stderr.endswith("calls BPF helper 109, which bpftc never emits\n")
    ), stderr

    # A helper bpftc emits, but one the bundle's requirements do not list (what --check probes).
    unlisted = compile_program(two_probes, tmp_path / "unlisted.bpfb")
    requirements = bundle.read(unlisted.read_bytes()).resources.requirements
    assert "get_current_pid_tgid" in requirements.helpers
    helpers = tuple(helper for helper in requirements.helpers if helper != "get_current_pid_tgid")
    rewrite(unlisted, {"requirements": replace(requirements, helpers=helpers)})
    status, stderr = run_in_process(unlisted, capsys)
    assert status == 1 and stderr.endswith("calls get_current_pid_tgid, which its requirements do not list\n"), stderr

    huge = compile_program(two_probes, tmp_path / "huge.bpfb")
    maps = bundle.read(huge.read_bytes()).resources.maps
    rewrite(huge, {"maps": (replace(maps[1], max_entries=1_000_000), *maps[:1])})
    status, stderr = run_in_process(huge, capsys)
    assert status == 1 and "has type/key/value sizes/entries" in stderr and stderr.count("\n") == 1, stderr
    assert wait_unloaded(programs) == set()


def test_a_printf_wider_than_allowed_is_refused_by_both(tmp_path: Path, capsys) -> None:
    from tests.compile import diagnostics_text

    assert "ERROR: printf() width and precision are limited to 4096" in diagnostics_text(
        'begin { printf("%9999d", 1); }'
    )
    path = compile_program('begin { printf("%99d", 1); }', tmp_path / "wide.bpfb")
    events = bundle.read(path.read_bytes()).resources.events
    rewrite(path, {"events": (replace(events[0], format="%2000000000d"), *events[1:])})
    result = run_bpfrun(path)
    assert result.returncode == 1 and result.stderr.endswith(b"a width or precision above 4096\n"), result.stderr


def test_metadata_of_millions_of_empty_containers_is_refused_quickly(tmp_path: Path) -> None:
    """64 MiB of empty msgpack arrays, with a valid checksum: refused before they become gigabytes."""
    metadata = b"\xdd" + (1000).to_bytes(4, "big") + (b"\xdc" + (65535).to_bytes(2, "big") + b"\x90" * 65535) * 1000
    path = tmp_path / "wide.bpfb"
    path.write_bytes(with_section(GOOD, "metadata", metadata))
    result = run_bpfrun(path)  # without the limit: over 30 s and gigabytes of memory
    assert (result.returncode, result.stderr) == (1, b"bpfrun: ERROR: bundle metadata holds too many elements\n")


@pytest.mark.parametrize(
    "change",
    [
        {"name": "@x\n@forged: 1"},
        {"name": "@x\x1b[2J"},
        {"elf_name": "AT_x\0AT_y"},
    ],
    ids=["newline", "escape", "nul"],
)
def test_names_that_could_forge_output_are_refused(change: dict, tmp_path: Path) -> None:
    path = compile_program("BEGIN { @x = 1; exit(); }", tmp_path / "n.bpfb")
    maps = bundle.read(path.read_bytes()).resources.maps
    rewrite(path, {"maps": (replace(maps[0], **change), *maps[1:])})
    result = run_bpfrun(path)
    assert result.returncode == 1 and result.stderr.startswith(b"bpfrun: ERROR: bundle has a map named ")
    assert result.stderr.count(b"\n") == 1
