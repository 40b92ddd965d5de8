"""Code generation: every construct builds, passes LLVM's verifier and emits a BPF ELF with BTF.

Structural checks only (sections, symbols, metadata), no IR goldens; whether the kernel accepts and
runs the code is for tests/runtime.
"""

import struct

import pytest

from common import bundle
from common.schema import EXIT, PRINTF, kernel_key_fields
from common.types import COUNT_T, HIST_T, INT64, UINT32, UINT64, record_offsets, string_type
from bpftc.pipeline import compile_source
from bpftc.source import Source

CONSTRUCTS = [
    "BEGIN { @x = 1; }",
    "BEGIN { @x[pid, comm] = nsecs; }",
    "BEGIN { @[tid] = count(); }",
    "BEGIN { @h = hist(-5 * 3 / 2 % 7); }",
    "BEGIN { @h[comm] = quantize(nsecs); }",
    "BEGIN { @s = comm; @t = @s; }",
    "BEGIN { @x[1] = 1; delete(@x[1]); @x[2] = delete(); }",
    'BEGIN { printf("%d %s %lu %5x %%\\n", pid, comm, uid + gid, tid); }',
    "BEGIN { exit(); } END { exit(3); }",
    "interval:ms:100 / pid != 0 && !(1 > 2) || ~0 == -1 / { @i = count(); }",
    "kprobe:f { @a = arg0 + arg5; } kretprobe:f { @r = retval << 2 >> 1; }",
    "tracepoint:syscalls:sys_enter_read, tracepoint:syscalls:sys_enter_write { @n[pid] = @n[pid] + 1; }",
    'BEGIN { @k["a"] = 1; @k["longer key"] = 2; printf("%s\\n", @unknown_string[1]); }',
]


def compiled(program: str) -> bundle.Bundle:
    result = compile_source(Source("stdin", program))
    assert not result.diagnostics.has_errors
    return bundle.read(result.bundle)


def section_names(elf: bytes) -> list[str]:
    """Section names of a little-endian ELF64 object."""
    (shoff,) = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + index * shentsize) for index in range(shnum)]
    names_offset = headers[shstrndx][4]
    return [elf[names_offset + header[0] : elf.index(b"\0", names_offset + header[0])].decode() for header in headers]


@pytest.mark.parametrize("program", CONSTRUCTS)
def test_construct_emits_a_bpf_object_with_btf(program):
    elf = compiled(program).elf
    assert elf[:4] == b"\x7fELF"
    assert struct.unpack_from("<H", elf, 0x12)[0] == 247  # EM_BPF
    sections = section_names(elf)
    assert ".BTF" in sections and ".maps" in sections and "license" in sections
    assert ".eh_frame" not in sections  # functions are nounwind


def test_each_attach_point_gets_its_program_and_section():
    resources = compiled(CONSTRUCTS[11]).resources
    assert [(probe.provider, probe.target, probe.program) for probe in resources.probes] == [
        ("tracepoint", ("syscalls", "sys_enter_read"), "tracepoint_syscalls_sys_enter_read_1"),
        ("tracepoint", ("syscalls", "sys_enter_write"), "tracepoint_syscalls_sys_enter_write_2"),
    ]
    sections = section_names(compiled(CONSTRUCTS[11]).elf)
    assert "tracepoint/syscalls/sys_enter_read" in sections
    assert "tracepoint/syscalls/sys_enter_write" in sections


def test_interval_period_and_begin_end_sections():
    resources = compiled("interval:ms:250 { } interval:s:2 { } i:us:500 { } interval:hz:99 { } BEGIN { } END { }").resources
    assert [probe.period_ns for probe in resources.probes] == [250_000_000, 2_000_000_000, 500_000, 10_101_010, 0, 0]
    assert {"perf_event", "raw_tp"} <= set(section_names(compiled("interval:s:1 { } BEGIN { }").elf))


def test_maps_record_key_and_value_types():
    resources = compiled("BEGIN { @h[comm, pid] = hist(1); @c = count(); @t[tid] = nsecs - 1; }").resources
    maps = {spec.name: spec for spec in resources.maps}
    # Map keys and values are 64-bit, as in bpftrace (the checker still names the first type).
    assert maps["@h"].key == (string_type(16), UINT64) and maps["@h"].value == HIST_T
    assert kernel_key_fields(maps["@h"]) == (string_type(16), UINT64, UINT64)
    assert record_offsets(kernel_key_fields(maps["@h"])) == ((0, 16, 24), 32)
    assert maps["@c"].key == () and maps["@c"].value == COUNT_T
    assert maps["@t"].value == INT64
    assert [spec.elf_name for spec in resources.maps] == ["AT_c", "AT_h", "AT_t"]


def test_string_keys_widen_to_the_longest_use():
    resources = compiled('BEGIN { @k["a"] = 1; @k["longer key"] = 2; }').resources
    assert resources.maps[0].key == (string_type(11),)


def test_printf_and_exit_share_one_event_id_space():
    resources = compiled('BEGIN { printf("a %d\\n", pid); exit(); printf("%s\\n", comm); exit(2); }').resources
    assert [(event.id, event.kind, event.format, event.args) for event in resources.events] == [
        (0, PRINTF, "a %d\n", (UINT32,)),
        (1, EXIT, "", (INT64,)),
        (2, PRINTF, "%s\n", (string_type(16),)),
    ]
    assert resources.event_map == "events"


def test_program_without_events_has_no_ring_buffer():
    resources = compiled("BEGIN { @x = 1; }").resources
    assert resources.events == () and resources.event_map == ""


@pytest.mark.parametrize("program", CONSTRUCTS)
def test_loader_accepts_what_the_compiler_emits(program):
    # bpfrun's checks of a bundle (verify.py) must let through everything bpftc produces.
    from bpfrun.verify import verify

    verify(compiled(program).resources)
