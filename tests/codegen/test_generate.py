"""Code generation: every construct builds, passes LLVM's verifier and emits a BPF ELF with BTF.

Structural checks only (sections, symbols, metadata), no IR goldens; whether the kernel accepts and
runs the code is for tests/runtime.
"""

import struct

import pytest

from common import bundle, layout, schema
from common.layout import I64, Layout
from common.schema import ExitEvent, PrintfEvent
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
    # scratch variables, scopes, control flow
    "BEGIN { $x = 1; $x = 1000; let $y: uint16 = 5; if ($x > $y) { $z = $x; @a = $z; } else if $y { @a = 2; } }",
    "BEGIN { $i = 0; while ($i < 5) { $i++; if ($i == 3) { continue; } @w[$i] = $i * 2; } }",
    "BEGIN { for ($i : 0..10) { if ($i > 5) { break; } @f[$i] = count(); } unroll(3) { @u++; } }",
    "BEGIN { $a = 5; $a += 2; $a <<= 1; --$a; @v = $a-- + ++$a; @c += 3; @c -= 1; }",
    # tuples, records, strings, ternary, casts, short-circuit
    'BEGIN { $t = (1, "two", (3, comm)); $r = (a = 1, b = "x"); @t = $t; @r[$r.b] = $t.2.1; print(($t.0, $r)); }',
    'BEGIN { $s = comm == "bpfrun" ? "yes" : "no"; @s[$s] = (uint8)300 + (int16)-2; @b = (bool)5 && 0 || !1; }',
    "BEGIN { $zero = 0; @z = 1 / $zero; @m = -7 % ($zero - $zero); $q = (uint32)-1; @q = $q; @e = sizeof(uint32) + sizeof($q); }",
    # aggregations of every kind, with and without keys
    "BEGIN { @s = sum(5); @mi = min(-3); @ma = max(4); @a = avg(2); @st = stats(7); @l = lhist(5, 0, 100, 10); }",
    "BEGIN { @s[1] = sum(5); @mi[1] = min(-3); @ma[1] = max(4); @a[1] = avg(2); @st[1] = stats(7); @l[1] = lhist(5, 0, 100, 10); }",
    "BEGIN { @h0 = hist(100, 0); @h5[comm] = hist(nsecs, 5); @c = count(); delete(@c); @k[1] = count(); delete(@k, 1); }",
    # events that act on maps, and print of values
    'BEGIN { @x[1] = 1; print(@x); print(@x, 1, 2); clear(@x); zero(@x); print(5); print("s"); print((1, comm)); }',
    'BEGIN { $v = { let $b = 3; $b + 1 }; printf("%d %s %d\\n", $v, probe, has_key(@x, 1)); @x[2] = 3; exit(1); }',
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
    resources = compiled(
        "interval:ms:250 { } interval:s:2 { } i:us:500 { } interval:hz:99 { } BEGIN { } END { }"
    ).resources
    assert [probe.period for probe in resources.probes] == [250_000_000, 2_000_000_000, 500_000, 10_101_010, 0, 0]
    assert [probe.attach_point for probe in resources.probes][-3:] == ["interval:hz:99", "begin", "end"]
    assert {"perf_event", "raw_tp"} <= set(section_names(compiled("interval:s:1 { } BEGIN { }").elf))


def test_maps_record_key_and_value_layouts():
    resources = compiled("BEGIN { @h[comm, pid] = hist(1); @c = count(); @t[tid] = nsecs - 1; }").resources
    maps = {spec.name: spec for spec in resources.maps}
    # Integers keep their width in the layout (written as 8 bytes); fields at 8-aligned offsets.
    pid = layout.integer(4, False)
    comm_pid = Layout(layout.TUPLE, 24, (layout.Field("", 0, Layout(layout.STRING, 16)), layout.Field("", 16, pid)))
    assert maps["@h"].key == comm_pid and maps["@h"].aggregate == "hist" and maps["@h"].params == (0,)
    assert maps["@h"].kernel_type == schema.PERCPU_HASH
    assert [field.offset for field in schema.kernel_key(maps["@h"]).fields] == [0, 24]
    # A count without keys is one slot of a per-CPU array.
    assert maps["@c"].key is None and maps["@c"].kernel_type == schema.PERCPU_ARRAY and maps["@c"].max_entries == 1
    assert maps["@t"].value == I64 and maps["@t"].kernel_type == schema.HASH
    assert [spec.elf_name for spec in resources.maps] == ["AT_c", "AT_h", "AT_t"]


def test_a_histogram_without_keys_is_a_per_cpu_array_of_buckets():
    spec = compiled("BEGIN { @h = hist(1, 2); @l = lhist(1, 0, 100, 10); }").resources.maps
    assert [(m.kernel_type, m.max_entries) for m in spec] == [(schema.PERCPU_ARRAY, 253), (schema.PERCPU_ARRAY, 12)]


def test_string_keys_widen_to_the_longest_use():
    resources = compiled('BEGIN { @k["a"] = 1; @k["longer key"] = 2; }').resources
    assert resources.maps[0].key == Layout(layout.STRING, 11)


def test_printf_and_exit_share_one_event_id_space():
    resources = compiled('BEGIN { printf("a %d\\n", pid); exit(); printf("%s\\n", comm); exit(2); }').resources
    assert resources.events == (
        PrintfEvent("a %d\n", Layout(layout.TUPLE, 8, (layout.Field("", 0, layout.integer(4, False)),))),
        ExitEvent(),
        PrintfEvent("%s\n", Layout(layout.TUPLE, 16, (layout.Field("", 0, Layout(layout.STRING, 16)),))),
    )
    assert resources.event_map == "events" and resources.lost_map == "lost_events"


def test_program_without_events_has_no_ring_buffer():
    resources = compiled("BEGIN { @x = 1; }").resources
    assert resources.events == () and resources.event_map == "" and resources.lost_map == ""


@pytest.mark.parametrize("program", CONSTRUCTS)
def test_loader_accepts_what_the_compiler_emits(program):
    # bpfrun's checks of a bundle (verify.py) must let through everything bpftc produces.
    from bpfrun.verify import verify

    verify(compiled(program).resources)
