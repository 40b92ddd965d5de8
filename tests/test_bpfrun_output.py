"""bpfrun's map output: the value model (bpfrun/maps.py) and its text rendering (bpfrun/output.py).

Expected text comes from bpftrace 0.27.1 (bpftrace-oracle); each test names the program that
printed it. The last tests run real programs: bpftc compiles them, bpfrun runs them, and the whole
stdout must be what bpftrace printed for the same program.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

from bpfrun import output
from bpfrun.maps import Histogram, MapValues, build_map
from common.schema import MapSpec
from common.types import BOOL_T, COUNT_T, HIST_T, INT64, UINT64, Type, string_type

from tests.bpfrun_run import (
    Workload,
    bpfrun_command,
    compile_program,
    needs_bpf,
    programs_loaded,
    run_bpfrun,
    wait_unloaded,
)

INT32 = Type("int", 4, True)
UINT32 = Type("int", 4, False)


def bucket(value: int) -> int:
    """hist()'s bucket index: 0 for negative values, 1 for 0, else 2 + floor(log2(value))."""
    if value < 0:
        return 0
    return 1 if value == 0 else 1 + value.bit_length()


def histogram(*values: int) -> Histogram:
    counts = [0] * (max(map(bucket, values)) + 1)
    for value in values:
        counts[bucket(value)] += 1
    return Histogram(tuple(counts))


def text(*maps: MapValues) -> str:
    return output.render_exit(maps)


def test_scalars_keys_and_histograms() -> None:
    # BEGIN { @a[1] = 1; @b = hist(5); @c = 3; @d = hist(6); exit(); }
    assert text(
        MapValues("@a", True, (((1,), 1),)),
        MapValues("@b", False, (((), histogram(5)),)),
        MapValues("@c", False, (((), 3),)),
        MapValues("@d", False, (((), histogram(6)),)),
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
    assert text(MapValues("@x", True, ())) == "\n\n"


def test_histogram_rows_bars_and_kilo_labels() -> None:
    # BEGIN { @h = hist(1); @h = hist(1); @h = hist(1); @h = hist(200000); @h = hist(5); exit(); }
    assert output.render_histogram(histogram(1, 1, 1, 200000, 5)) == (
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
    assert output.render_histogram(histogram(-1, 0, 1, 3, 3, 3, 10**12, 10**18)) == (
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
    counts = [0, 0, 0, 624946893043, 955801161138]
    first = output.render_histogram(Histogram(tuple(counts))).splitlines()[0]
    assert first.split("|")[1] == "@" * 34 + " " * 18


def test_keyed_histograms_and_counts() -> None:
    # BEGIN { @h[1] = hist(1); @h[1] = hist(1); @h[2] = hist(100); @h[0] = hist(100); @h[0] = hist(100);
    #         @h[0] = hist(100); @x[3] = count(); @x[3] = count(); @x[1] = count(); @y = count(); exit(); }
    assert text(
        MapValues("@h", True, (((2,), histogram(100)), ((1,), histogram(1, 1)), ((0,), histogram(100, 100, 100)))),
        MapValues("@x", True, (((1,), 1), ((3,), 2))),
        MapValues("@y", False, (((), 1),)),
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
    assert text(
        MapValues("@b", False, (((), True),)),
        MapValues("@c", True, (((2, "y"), 3), ((1, "x"), 7))),
        MapValues("@f", False, (((), False),)),
        MapValues("@n", False, (((), -5),)),
        MapValues("@s", True, ((("a",), "world"), (("b",), "hello"))),
        MapValues("@u", False, (((), 18446744073709551615),)),
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
    assert text(
        MapValues("@y", True, ((("(ab)",), 1),)),
        MapValues("@z", True, ((("a", 1, True), 1),)),
    ) == "\n\n@y[ab]: 1\n@z[a, 1, true]: 1\n"


def u64(*values: int) -> bytes:
    return b"".join((value % 2**64).to_bytes(8, "little") for value in values)


def string(value: bytes, size: int) -> bytes:
    return value.ljust(size, b"\0")


def test_model_sorts_ints_by_value() -> None:
    # BEGIN { @k[1] = (int64)10; @k[2] = (int64)30; @k[3] = (int64)20; @k[4] = (int64)5;
    #         @k[5] = (int64)-7; exit(); }  prints @k[5]: -7, @k[4]: 5, @k[1]: 10, @k[3]: 20, @k[2]: 30
    spec = MapSpec("@k", "AT_k", (INT64,), INT64, 16)
    entries = [(u64(key), u64(value)) for key, value in [(1, 10), (2, 30), (3, 20), (4, 5), (5, -7)]]
    model = build_map(spec, entries, ncpus=2)
    assert model.entries == (((5,), -7), ((4,), 5), ((1,), 10), ((3,), 20), ((2,), 30))
    # BEGIN { @j[1] = (uint64)3; @j[2] = (uint64)1; @j[3] = (uint64)2; @u[1] = (uint64)-1; ... }
    unsigned = MapSpec("@j", "AT_j", (INT64,), UINT64, 16)
    model = build_map(unsigned, [(u64(1), u64(-1)), (u64(2), u64(1)), (u64(3), u64(2))], ncpus=2)
    assert model.entries == (((2,), 1), ((3,), 2), ((1,), 2**64 - 1))


def test_model_sums_per_cpu_counts_and_breaks_ties_by_key() -> None:
    spec = MapSpec("@", "AT_", (INT64, string_type(8)), COUNT_T, 16)
    entries = [
        (u64(2) + string(b"b", 8), u64(1, 2)),
        (u64(1) + string(b"z", 8), u64(0, 3)),
        (u64(1) + string(b"a", 8), u64(5, 0)),
        (u64(-4) + string(b"q", 8), u64(2**64 - 1, 2)),  # wraps around like the u64 sum bpftrace makes
    ]
    model = build_map(spec, entries, ncpus=2)
    assert model.keyed
    assert model.entries == (((-4, "q"), 1), ((1, "z"), 3), ((2, "b"), 3), ((1, "a"), 5))


def test_model_sorts_strings_and_bools_by_key() -> None:
    spec = MapSpec("@s", "AT_s", (string_type(4),), string_type(8), 16)
    entries = [(string(b"b", 8), string(b"hello", 8)), (string(b"a", 8), string(b"world", 8))]
    assert build_map(spec, entries, ncpus=2).entries == ((("a",), "world"), (("b",), "hello"))
    # Int keys compare as bpftrace compares them: the signed integer of their size.
    keyed_by_uint32 = MapSpec("@b", "AT_b", (UINT32,), BOOL_T, 16)
    entries = [(u64(1), u64(1)), (u64(0xFFFFFFFF), u64(0)), (u64(0), u64(1))]
    assert build_map(keyed_by_uint32, entries, ncpus=2).entries == (((0xFFFFFFFF,), False), ((0,), True), ((1,), True))


def test_model_marks_truncated_strings() -> None:
    # A string that fills its buffer has lost its end: bpftrace appends its str_trunc_trailer "..".
    spec = MapSpec("@s", "AT_s", (), string_type(4), 16)
    model = build_map(spec, [(u64(0), b"abcd\0\0\0\0")], ncpus=2)
    assert model.entries == (((), "abcd.."),)
    assert not model.keyed


def test_model_groups_histogram_buckets_by_key() -> None:
    spec = MapSpec("@h", "AT_h", (INT32,), HIST_T, 16)
    entries = [
        (u64(7, 2), u64(1, 1)),  # @h[7]: two 1s, one on each CPU
        (u64(-1, 8), u64(0, 3)),  # @h[-1]: three values in [64, 128)
        (u64(-1, 3), u64(1, 0)),
        (u64(5, 1), u64(1, 0)),
    ]
    model = build_map(spec, entries, ncpus=2)
    assert model.entries == (
        ((5,), Histogram((0, 1))),
        ((7,), Histogram((0, 0, 2))),
        ((-1,), Histogram((0, 0, 0, 1, 0, 0, 0, 0, 3))),
    )
    scalar = MapSpec("@g", "AT_g", (), HIST_T, 16)
    assert build_map(scalar, [(u64(4), u64(1, 0))], ncpus=2).entries == (((), Histogram((0, 0, 0, 0, 1))),)


# Real runs. Expected stdout is what bpftrace 0.27.1 printed for the same program.

REAL_RUNS = [
    (
        'BEGIN { @a[1] = 1; @b = hist(5); @c = 3; @d = hist(6); exit(); }',
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
    runner = subprocess.Popen(bpfrun_command(compile_program(
        "tracepoint:syscalls:sys_enter_read { @x = count(); }", tmp_path / "t.bpfb")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
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
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], capture_output=True, timeout=20)
    assert (result.returncode, result.stderr) == (0, b"Attached 1 probe\n")
    assert re.fullmatch(rb"\n\n@x: [1-9][0-9]*\n", result.stdout)  # other processes may read before exit() stops it
