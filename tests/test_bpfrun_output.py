"""bpfrun's output: kernel map bytes → the value model (bpfrun/maps.py) → text and JSON
(bpfrun/output.py).

Expected text comes from bpftrace 0.27.1 (bpftrace-oracle); each test names the program that
printed it. The last tests run real programs: bpftc compiles them, bpfrun runs them, and the whole
stdout must be what bpftrace printed for the same program.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from bpfrun import maps, output
from bpfrun.values import MapValue
from common import layout
from common.layout import I64, U64, Layout
from common.schema import HASH, PERCPU_ARRAY, PERCPU_HASH, MapSpec

from tests.bpfrun_run import (
    Workload,
    bpfrun_command,
    compile_program,
    needs_bpf,
    programs_loaded,
    run_bpfrun,
    wait_unloaded,
)

NCPUS = 2
BOOL = Layout(layout.BOOL, 8)


def string_layout(size: int) -> Layout:
    return Layout(layout.STRING, size)


def tuple_layout(*fields: Layout) -> Layout:
    return layout.packed(layout.TUPLE, [("", field) for field in fields])


def u64(*values: int) -> bytes:
    return b"".join((value % 2**64).to_bytes(8, "little") for value in values)


def string(value: bytes, size: int) -> bytes:
    return value.ljust(size, b"\0")


def bucket(value: int) -> int:
    """hist()'s bucket index: 0 for negative values, 1 for 0, else 2 + floor(log2(value))."""
    if value < 0:
        return 0
    return 1 if value == 0 else 1 + value.bit_length()


def hist_map(name: str, *values: int) -> MapValue:
    """A hist() map without keys (a per-CPU array of buckets) holding `values`, all on CPU 0."""
    spec = MapSpec(name, "AT", PERCPU_ARRAY, None, I64, 66, "hist", (0,))
    counts: dict[int, int] = {}
    for value in values:
        counts[bucket(value)] = counts.get(bucket(value), 0) + 1
    entries = [(index.to_bytes(4, "little"), u64(count, 0)) for index, count in counts.items()]
    return maps.build(spec, entries, NCPUS)


def histogram_text(*values: int) -> str:
    ((_, histogram),) = hist_map("@h", *values).entries
    return output.text_histogram(histogram)


def plain_map(name: str, key: Layout | None, value: Layout, entries: list[tuple[bytes, bytes]]) -> MapValue:
    spec = MapSpec(name, "AT", HASH, key, value, 16)
    return maps.build(spec, entries if key is not None else [(u64(0), data) for _, data in entries], NCPUS)


def text(*values: MapValue) -> str:
    return "\n\n" + "".join(output.text_map(value) for value in values)


def test_scalars_keys_and_histograms() -> None:
    # BEGIN { @a[1] = 1; @b = hist(5); @c = 3; @d = hist(6); exit(); }
    assert text(
        plain_map("@a", I64, I64, [(u64(1), u64(1))]),
        hist_map("@b", 5),
        plain_map("@c", None, I64, [(b"", u64(3))]),
        hist_map("@d", 6),
    ) == (
        "\n"
        "\n"
        "@a[1]: 1\n"
        "@b:\n"
        "[4, 8)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "\n"
        "@c: 3\n"
        "@d:\n"
        "[4, 8)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "\n"
    )


def test_no_maps_and_empty_maps() -> None:
    # BEGIN { exit(); } prints two newlines; a map without entries prints nothing.
    assert text() == "\n\n"
    assert text(plain_map("@x", I64, I64, [])) == "\n\n"
    assert text(hist_map("@h")) == "\n\n"


def test_histogram_rows_bars_and_kilo_labels() -> None:
    # BEGIN { @h = hist(1); @h = hist(1); @h = hist(1); @h = hist(200000); @h = hist(5); exit(); }
    assert histogram_text(1, 1, 1, 200000, 5) == (
        "[1]                    3 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "[2, 4)                 0 |                                                    |\n"
        "[4, 8)                 1 |@@@@@@@@@@@@@@@@@                                   |\n"
        "[8, 16)                0 |                                                    |\n"
        "[16, 32)               0 |                                                    |\n"
        "[32, 64)               0 |                                                    |\n"
        "[64, 128)              0 |                                                    |\n"
        "[128, 256)             0 |                                                    |\n"
        "[256, 512)             0 |                                                    |\n"
        "[512, 1K)              0 |                                                    |\n"
        "[1K, 2K)               0 |                                                    |\n"
        "[2K, 4K)               0 |                                                    |\n"
        "[4K, 8K)               0 |                                                    |\n"
        "[8K, 16K)              0 |                                                    |\n"
        "[16K, 32K)             0 |                                                    |\n"
        "[32K, 64K)             0 |                                                    |\n"
        "[64K, 128K)            0 |                                                    |\n"
        "[128K, 256K)           1 |@@@@@@@@@@@@@@@@@                                   |\n"
    )


def test_histogram_negative_zero_and_exa_labels() -> None:
    # BEGIN { @h = hist(-1); @h = hist(0); @h = hist(1); @h = hist(3); @h = hist(3); @h = hist(3);
    #         @h = hist(1000000000000); @h = hist(1000000000000000000); exit(); }
    assert histogram_text(-1, 0, 1, 3, 3, 3, 10**12, 10**18) == (
        "(..., 0)               1 |@@@@@@@@@@@@@@@@@                                   |\n"
        "[0]                    1 |@@@@@@@@@@@@@@@@@                                   |\n"
        "[1]                    1 |@@@@@@@@@@@@@@@@@                                   |\n"
        "[2, 4)                 3 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "[4, 8)                 0 |                                                    |\n"
        "[8, 16)                0 |                                                    |\n"
        "[16, 32)               0 |                                                    |\n"
        "[32, 64)               0 |                                                    |\n"
        "[64, 128)              0 |                                                    |\n"
        "[128, 256)             0 |                                                    |\n"
        "[256, 512)             0 |                                                    |\n"
        "[512, 1K)              0 |                                                    |\n"
        "[1K, 2K)               0 |                                                    |\n"
        "[2K, 4K)               0 |                                                    |\n"
        "[4K, 8K)               0 |                                                    |\n"
        "[8K, 16K)              0 |                                                    |\n"
        "[16K, 32K)             0 |                                                    |\n"
        "[32K, 64K)             0 |                                                    |\n"
        "[64K, 128K)            0 |                                                    |\n"
        "[128K, 256K)           0 |                                                    |\n"
        "[256K, 512K)           0 |                                                    |\n"
        "[512K, 1M)             0 |                                                    |\n"
        "[1M, 2M)               0 |                                                    |\n"
        "[2M, 4M)               0 |                                                    |\n"
        "[4M, 8M)               0 |                                                    |\n"
        "[8M, 16M)              0 |                                                    |\n"
        "[16M, 32M)             0 |                                                    |\n"
        "[32M, 64M)             0 |                                                    |\n"
        "[64M, 128M)            0 |                                                    |\n"
        "[128M, 256M)           0 |                                                    |\n"
        "[256M, 512M)           0 |                                                    |\n"
        "[512M, 1G)             0 |                                                    |\n"
        "[1G, 2G)               0 |                                                    |\n"
        "[2G, 4G)               0 |                                                    |\n"
        "[4G, 8G)               0 |                                                    |\n"
        "[8G, 16G)              0 |                                                    |\n"
        "[16G, 32G)             0 |                                                    |\n"
        "[32G, 64G)             0 |                                                    |\n"
        "[64G, 128G)            0 |                                                    |\n"
        "[128G, 256G)           0 |                                                    |\n"
        "[256G, 512G)           0 |                                                    |\n"
        "[512G, 1T)             1 |@@@@@@@@@@@@@@@@@                                   |\n"
        "[1T, 2T)               0 |                                                    |\n"
        "[2T, 4T)               0 |                                                    |\n"
        "[4T, 8T)               0 |                                                    |\n"
        "[8T, 16T)              0 |                                                    |\n"
        "[16T, 32T)             0 |                                                    |\n"
        "[32T, 64T)             0 |                                                    |\n"
        "[64T, 128T)            0 |                                                    |\n"
        "[128T, 256T)           0 |                                                    |\n"
        "[256T, 512T)           0 |                                                    |\n"
        "[512T, 1P)             0 |                                                    |\n"
        "[1P, 2P)               0 |                                                    |\n"
        "[2P, 4P)               0 |                                                    |\n"
        "[4P, 8P)               0 |                                                    |\n"
        "[8P, 16P)              0 |                                                    |\n"
        "[16P, 32P)             0 |                                                    |\n"
        "[32P, 64P)             0 |                                                    |\n"
        "[64P, 128P)            0 |                                                    |\n"
        "[128P, 256P)           0 |                                                    |\n"
        "[256P, 512P)           0 |                                                    |\n"
        "[512P, 1E)             1 |@@@@@@@@@@@@@@@@@                                   |\n"
    )


def test_bar_width_is_bpftrace_single_precision() -> None:
    # bpftrace: (count / (float)max) * 52, truncated. Single precision rounds this one up to 34.
    assert output._bar_width(624946893043, 955801161138) == 34


def test_keyed_histograms_and_counts() -> None:
    # BEGIN { @h[1] = hist(1); @h[1] = hist(1); @h[2] = hist(100); @h[0] = hist(100); @h[0] = hist(100);
    #         @h[0] = hist(100); @x[3] = count(); @x[3] = count(); @x[1] = count(); @y = count(); exit(); }
    keyed_hist = MapSpec("@h", "AT_h", PERCPU_HASH, I64, I64, 16, "hist", (0,))
    entries = [(u64(1, bucket(1)), u64(1, 1)), (u64(2, bucket(100)), u64(0, 1)), (u64(0, bucket(100)), u64(2, 1))]
    counts = MapSpec("@x", "AT_x", PERCPU_HASH, I64, U64, 16, "count")
    scalar_count = MapSpec("@y", "AT_y", PERCPU_ARRAY, None, U64, 1, "count")
    assert text(
        maps.build(keyed_hist, entries, NCPUS),
        maps.build(counts, [(u64(3), u64(1, 1)), (u64(1), u64(0, 1))], NCPUS),
        maps.build(scalar_count, [(bytes(4), u64(1, 0))], NCPUS),
    ) == (
        "\n"
        "\n"
        "@h[2]:\n"
        "[64, 128)              1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "\n"
        "@h[1]:\n"
        "[1]                    2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "\n"
        "@h[0]:\n"
        "[64, 128)              3 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "\n"
        "@x[1]: 1\n"
        "@x[3]: 2\n"
        "@y: 1\n"
    )


def test_values_and_keys_of_every_kind() -> None:
    # BEGIN { @c[1, "x"] = 7; @c[2, "y"] = 3; @s["b"] = "hello"; @s["a"] = "world"; @b = true;
    #         @f = false; @n = -5; @u = (uint64)-1; exit(); }
    int_string = tuple_layout(I64, string_layout(2))
    assert text(
        plain_map("@b", None, BOOL, [(b"", u64(1))]),
        plain_map("@c", int_string, I64, [(u64(1) + string(b"x", 8), u64(7)), (u64(2) + string(b"y", 8), u64(3))]),
        plain_map("@f", None, BOOL, [(b"", u64(0))]),
        plain_map("@n", None, I64, [(b"", u64(-5))]),
        plain_map(
            "@s",
            string_layout(2),
            string_layout(6),
            [(string(b"b", 8), string(b"hello", 8)), (string(b"a", 8), string(b"world", 8))],
        ),
        plain_map("@u", None, U64, [(b"", u64(-1))]),
    ) == (
        "\n"
        "\n"
        "@b: true\n"
        "@c[2, y]: 3\n"
        "@c[1, x]: 7\n"
        "@f: false\n"
        "@n: -5\n"
        "@s[a]: world\n"
        "@s[b]: hello\n"
        "@u: 18446744073709551615\n"
    )


def test_key_parentheses_quirk() -> None:
    # BEGIN { @y["(ab)"] = 1; @z["a", 1, true] = 1; exit(); } prints @y[ab]: bpftrace strips
    # one pair of parentheses around any key text, not only around its tuples.
    three = tuple_layout(string_layout(2), I64, BOOL)
    assert (
        text(
            plain_map("@y", string_layout(5), I64, [(string(b"(ab)", 8), u64(1))]),
            plain_map("@z", three, I64, [(string(b"a", 8) + u64(1) + u64(1), u64(1))]),
        )
        == "\n\n@y[ab]: 1\n@z[a, 1, true]: 1\n"
    )


def test_model_sorts_ints_by_value() -> None:
    # BEGIN { @k[1] = (int64)10; @k[2] = (int64)30; @k[3] = (int64)20; @k[4] = (int64)5;
    #         @k[5] = (int64)-7; exit(); }  prints @k[5]: -7, @k[4]: 5, @k[1]: 10, @k[3]: 20, @k[2]: 30
    entries = [(u64(key), u64(value)) for key, value in [(1, 10), (2, 30), (3, 20), (4, 5), (5, -7)]]
    assert plain_map("@k", I64, I64, entries).entries == ((5, -7), (4, 5), (1, 10), (3, 20), (2, 30))
    unsigned = plain_map("@j", I64, U64, [(u64(1), u64(-1)), (u64(2), u64(1)), (u64(3), u64(2))])
    assert unsigned.entries == ((2, 1), (3, 2), (1, 2**64 - 1))


def test_model_sums_per_cpu_counts_and_breaks_ties_by_key() -> None:
    spec = MapSpec("@", "AT_", PERCPU_HASH, tuple_layout(I64, string_layout(8)), U64, 16, "count")
    entries = [
        (u64(2) + string(b"b", 8), u64(1, 2)),
        (u64(1) + string(b"z", 8), u64(0, 3)),
        (u64(1) + string(b"a", 8), u64(5, 0)),
        (u64(-4) + string(b"q", 8), u64(2**64 - 1, 2)),  # wraps around like the u64 sum bpftrace makes
    ]
    model = maps.build(spec, entries, NCPUS)
    assert model.keyed
    assert [(key.items, value) for key, value in model.entries] == [
        ((-4, "q"), 1),
        ((1, "z"), 3),
        ((2, "b"), 3),
        ((1, "a"), 5),
    ]


def test_model_sorts_strings_and_bools_by_key() -> None:
    entries = [(string(b"b", 8), string(b"hello", 8)), (string(b"a", 8), string(b"world", 8))]
    assert plain_map("@s", string_layout(4), string_layout(8), entries).entries == (("a", "world"), ("b", "hello"))
    # Int keys compare as bpftrace compares them: the stored 64 bits as a signed integer.
    entries = [(u64(1), u64(1)), (u64(-1), u64(0)), (u64(0), u64(1))]
    assert plain_map("@b", U64, BOOL, entries).entries == ((2**64 - 1, False), (0, True), (1, True))


def test_model_marks_truncated_strings() -> None:
    # A string that fills its buffer has lost its end: bpftrace appends its str_trunc_trailer "..".
    model = plain_map("@s", None, string_layout(4), [(b"", b"abcd\0\0\0\0")])
    assert model.entries == ((None, "abcd.."),)
    assert not model.keyed


def test_model_groups_histogram_buckets_by_key() -> None:
    spec = MapSpec("@h", "AT_h", PERCPU_HASH, I64, I64, 16, "hist", (0,))
    entries = [
        (u64(7, 2), u64(1, 1)),  # @h[7]: two 1s, one on each CPU
        (u64(-1, 8), u64(0, 3)),  # @h[-1]: three values in [64, 128)
        (u64(-1, 3), u64(1, 0)),
        (u64(5, 1), u64(1, 0)),
    ]
    model = maps.build(spec, entries, NCPUS)
    assert [key for key, _ in model.entries] == [5, 7, -1]
    assert [[row.count for row in histogram.rows] for _, histogram in model.entries] == [[1], [2], [1, 0, 0, 0, 0, 3]]


def test_json_of_maps_values_and_histograms() -> None:
    # BEGIN { @c[1, "x"] = 7; @h = hist(5); @b = true; exit(); } with -f json
    int_string = tuple_layout(I64, string_layout(2))
    assert output.json_map(plain_map("@c", int_string, I64, [(u64(1) + string(b"x", 8), u64(7))])) == (
        '{"type": "map", "data": {"@c": {"1,x": 7}}}'
    )
    assert output.json_map(hist_map("@h", 5)) == '{"type": "hist", "data": {"@h": [{"min": 4, "max": 7, "count": 1}]}}'
    assert output.json_map(plain_map("@b", None, BOOL, [(b"", u64(1))])) == '{"type": "map", "data": {"@b": true}}'
    assert output.json_map(plain_map("@e", I64, I64, [])) is None
    # Integers a double cannot hold exactly are strings (RFC 8259), as in bpftrace.
    assert output.json_int(2**53) == "9007199254740992" and output.json_int(2**53 + 1) == '"9007199254740993"'
    assert output.json_string(b'a"b\\\n\x01\xff') == '"a\\"b\\\\\\n\\u0001\udcff"'


# Real runs. Expected stdout is what bpftrace 0.27.1 printed for the same program.

REAL_RUNS = [
    (
        "BEGIN { @a[1] = 1; @b = hist(5); @c = 3; @d = hist(6); exit(); }",
        "\n\n@a[1]: 1\n@b:\n[4, 8)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n\n"
        "@c: 3\n@d:\n[4, 8)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n\n",
        0,
    ),
    ('BEGIN { printf("hi %d\\n", 42); exit(); }', "hi 42\n\n\n", 0),
    ('BEGIN { printf("a\\n"); exit(); printf("b\\n"); } END { printf("end\\n"); }', "a\nend\n\n\n", 0),
    ('BEGIN { printf("hi\\n"); } END { printf("end\\n"); }', "hi\nend\n\n\n", 0),  # stops by itself
    ("BEGIN { exit(3); }", "\n\n", 3),
    ("BEGIN { exit(256 + 5); }", "\n\n", 5),
    (
        'BEGIN { printf("%5d|%-5d|%+d|%x|%X|%o|%c|%s|%10s|%lu|%hhd\\n", 42, 42, 42, 255, 255, 8, 65, "str", "str", -1, 200);'
        " exit(); }",
        "   42|42   |+42|ff|FF|10|A|str|       str|18446744073709551615|-56\n\n\n",
        0,
    ),
    (
        'BEGIN { @c[1, "x"] = 7; @c[2, "y"] = 3; @s["b"] = "hello"; @s["a"] = "world"; @n = -5; @["(ab)"] = 1; exit(); }',
        "\n\n@[ab]: 1\n@c[2, y]: 3\n@c[1, x]: 7\n@n: -5\n@s[a]: world\n@s[b]: hello\n",
        0,
    ),
    (
        "BEGIN { @h[1] = hist(1); @h[1] = hist(1); @h[2] = hist(100); @h[0] = hist(100); @h[0] = hist(100);"
        " @h[0] = hist(100); @x[3] = count(); @x[3] = count(); @x[1] = count(); @y = count(); exit(); }",
        "\n\n@h[2]:\n[64, 128)              1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n\n"
        "@h[1]:\n[1]                    2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n\n"
        "@h[0]:\n[64, 128)              3 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n\n"
        "@x[1]: 1\n@x[3]: 2\n@y: 1\n",
        0,
    ),
]


@needs_bpf
def test_real_runs_print_what_bpftrace_prints(tmp_path: Path) -> None:
    before = programs_loaded()
    for number, (program, stdout, exit_code) in enumerate(REAL_RUNS):
        bundle = compile_program(program, tmp_path / f"{number}.bpfb")
        result = run_bpfrun(bundle)
        assert (result.stdout.decode(), result.returncode) == (stdout, exit_code), program
        assert result.stderr.decode() == "Attached 1 probe\n" if "END" not in program else "Attached 2 probes\n"
    assert wait_unloaded(before) == set()


@needs_bpf
def test_tracepoint_counts_a_workload_until_sigint(tmp_path: Path) -> None:
    # tracepoint:syscalls:sys_enter_read /pid == PID/ { @[pid] = count(); } with PID doing 25 reads,
    # stopped by SIGINT: bpftrace prints "\n\n@[PID]: 25\n".
    before = programs_loaded()
    workload = Workload(25)
    try:
        program = f"tracepoint:syscalls:sys_enter_read /pid == {workload.pid}/ {{ @[pid] = count(); }}"
        bundle = compile_program(program, tmp_path / "count.bpfb")
        runner = subprocess.Popen(bpfrun_command(bundle), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert runner.stderr.readline() == b"Attached 1 probe\n"
            workload.go()
            runner.send_signal(signal.SIGINT)
            stdout, stderr = runner.communicate(timeout=10)
        finally:
            if runner.poll() is None:
                runner.kill()
                runner.wait()
    finally:
        workload.kill()
    assert (stdout.decode(), stderr, runner.returncode) == (f"\n\n@[{workload.pid}]: 25\n", b"", 0)
    assert wait_unloaded(before) == set()


@needs_bpf
def test_interval_exit_end_and_sigterm(tmp_path: Path) -> None:
    # interval:ms:100 { @n = count(); } interval:ms:350 { exit(); } END { printf("end\n"); }
    # bpftrace prints "end\n\n\n@n: 3\n" (three ticks of 100 ms fit in 350 ms; on a loaded machine a
    # tick may be late or early, so 2 and 4 are accepted too).
    bundle = compile_program(
        'interval:ms:100 { @n = count(); } interval:ms:350 { exit(); } END { printf("end\\n"); }', tmp_path / "i.bpfb"
    )
    result = run_bpfrun(bundle)
    assert result.returncode == 0
    assert result.stderr == b"Attached 3 probes\n"
    assert result.stdout.decode() in ("end\n\n\n@n: 3\n", "end\n\n\n@n: 2\n", "end\n\n\n@n: 4\n")
    # SIGTERM stops a run like SIGINT does.
    runner = subprocess.Popen(
        bpfrun_command(compile_program("tracepoint:syscalls:sys_enter_read { @x = count(); }", tmp_path / "t.bpfb")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert runner.stderr.readline() == b"Attached 1 probe\n"
    runner.send_signal(signal.SIGTERM)
    stdout, _ = runner.communicate(timeout=10)
    assert runner.returncode == 0
    assert stdout.startswith(b"\n\n")


@needs_bpf
def test_tracefs_is_mounted_when_missing(tmp_path: Path) -> None:
    # In a private mount namespace without tracefs, bpfrun mounts it to find the tracepoint.
    bundle = compile_program("tracepoint:syscalls:sys_enter_read { @x = count(); exit(); }", tmp_path / "t.bpfb")
    script = (
        "umount /sys/kernel/tracing 2>/dev/null; test ! -e /sys/kernel/tracing/events || exit 99; "
        f"(sleep 0.5; head -c1 /dev/zero >/dev/null) & {' '.join(bpfrun_command(bundle))}; "
        "status=$?; test -e /sys/kernel/tracing/events || exit 98; exit $status"
    )
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script], capture_output=True, timeout=20
    )
    assert (result.returncode, result.stderr) == (0, b"Attached 1 probe\n")
    assert re.fullmatch(rb"\n\n@x: [1-9][0-9]*\n", result.stdout)  # other processes may read before exit() stops it


_INTERRUPTED_WRITER = """
import signal, sys, time
from bpfrun.output import Output
signal.signal(signal.SIGINT, lambda *_: None)  # as bpfrun's: note the signal, carry on
output = Output("text", sys.stdout.buffer, sys.stderr.buffer)
data = b"".join(b"%d\\n" % i for i in range(2_000_000))
sys.stderr.write("ready\\n")
sys.stderr.flush()
time.sleep(0.3)
output.printf(data)  # one batch of lines, far larger than the pipe
output.flush()
"""


def test_a_signal_during_a_large_write_loses_nothing() -> None:
    """CPython's BufferedWriter loses the rest of a write larger than its buffer when a signal
    interrupts it; Output writes a buffer's worth at a time, so every line arrives."""
    child = subprocess.Popen(
        [sys.executable, "-c", _INTERRUPTED_WRITER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert child.stderr.readline() == b"ready\n"
    time.sleep(0.32)  # the child is writing, into a pipe nobody reads yet
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 0, stderr
    assert stdout == b"".join(b"%d\n" % i for i in range(2_000_000))
